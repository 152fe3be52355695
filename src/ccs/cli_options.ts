/**
 * The command line shared by backupagentnq and backupagentdq: the dispatcher starts both
 * with the same arguments, so each accepts every option of the other and ignores those that
 * are not its own.
 *
 * @module
 */
import type { Command } from "commander";

/** Adds every CCS agent option to `cmd`. */
export function addCcsOptions(cmd: Command): Command {
  return cmd
    .argument("[job...]", "jobs by id or title (default: every enabled CCS job)")
    .option("-d, --debug", "diagnostic log in Spool/Logs")
    .option("--debug2", "more diagnostics (same as -d)")
    .option("--debug3", "most diagnostics (same as -d)")
    .option("-c, --config <file>", "another cncop3.ini")
    .option("-n, --dryrun", "backupagentnq: print what would be done; backupagentdq: exit at once")
    .option("--nomaxdelete", "no delete collar: delete everything gone locally")
    .option("--noapplock", "do not take the application lock (logs go to NQU-...)")
    .option("--skipmoves", "no move promotion: moved files are ADD + DELETE")
    .option("--skipdeletes", "no cloud deletes this run")
    .option("--skippeeksource", "reuse the saved source listing instead of walking")
    .option("--skippeekcloud", "reuse the last saved cloud peek")
    .option("--usefork", "keep each file's backup state in a filesystem fork")
    .option("--nofork", "never use filesystem forks")
    .option("--usevss", "back up from a VSS snapshot (Windows)")
    .option(
      "--forcepeek",
      "full peek even when nothing seems to have changed (whole cloud listing; signature cache pruned)",
    )
    .option("--nicld", "do not log PEEK-NICLD lines for files outside the include filters")
    .option("--suppressmissing", "no warning for files that vanished before being packed")
    .option("--chunksize <size>", "backupagentdq: bytes per upload request (default 10M)")
    .option("--maxbacklog <n>", "backupagentdq: packs in flight before recording (default 150)")
    .option("--savepeek <file>", "write the cloud peek to this XML file")
    .option("--peeklog", "write the cloud peek to Logs/NQPK-....log")
    .option("--nolinks", "skip symbolic links (default: follow them)");
}

/** The parsed options of {@link addCcsOptions}. */
export interface CcsOptions {
  debug?: boolean;
  debug2?: boolean;
  debug3?: boolean;
  config?: string;
  dryrun?: boolean;
  nomaxdelete?: boolean;
  noapplock?: boolean;
  skipmoves?: boolean;
  skipdeletes?: boolean;
  skippeeksource?: boolean;
  skippeekcloud?: boolean;
  usefork?: boolean;
  nofork?: boolean;
  usevss?: boolean;
  forcepeek?: boolean;
  nicld?: boolean;
  suppressmissing?: boolean;
  chunksize?: string;
  maxbacklog?: string;
  savepeek?: string;
  peeklog?: boolean;
  nolinks?: boolean;
}
