/**
 * `backupagentdq [-d] [-c CONFIG] [--maxbacklog N] [--chunksize SIZE] [-n] [job ...]`: the
 * CCS dequeuer. Accepts every backupagentnq option (the dispatcher gives both the same
 * command line) and ignores the ones that are not its own.
 *
 * @module
 */
import { addCcsOptions, type CcsOptions } from "../ccs/cli_options.ts";
import { parseSize, runDq } from "../ccs/dq.ts";
import { appContext } from "../core/context.ts";
import { UsageError } from "../core/errors.ts";
import { newCommand, parseCommand } from "./command.ts";

/** Runs `backupagentdq`. */
export async function main(argv: string[]): Promise<number> {
  const cmd = addCcsOptions(
    newCommand("backupagentdq", "CCS dequeuer: upload pack files to the cncop network"),
  );
  if (!(await parseCommand(cmd, argv))) return 0;
  const o = cmd.opts<CcsOptions>();
  if (o.dryrun) return 0;
  let maxBacklog: number | undefined;
  if (o.maxbacklog !== undefined) {
    if (!/^[1-9]\d*$/.test(o.maxbacklog)) {
      throw new UsageError(`--maxbacklog must be a whole number above 0, not ${o.maxbacklog}`);
    }
    maxBacklog = Number(o.maxbacklog);
  }
  let chunkSize: number | undefined;
  if (o.chunksize !== undefined) {
    try {
      chunkSize = parseSize(o.chunksize);
    } catch (err) {
      throw new UsageError((err as Error).message, { hint: "e.g. --chunksize 10M" });
    }
  }
  const ctx = appContext({ config: o.config, debug: o.debug || o.debug2 || o.debug3 });
  return await runDq(ctx, cmd.processedArgs[0] as string[], {
    chunkSize,
    maxBacklog,
    session: process.env.CNCOP_JOB_SESSION || undefined,
  });
}
