/**
 * `cncopagent`: the backup agent dispatcher. Parses the command line and calls
 * {@link runDispatcher}.
 *
 * @module
 */
import { runDispatcher } from "../dispatcher/dispatcher.ts";
import { newCommand, parseCommand } from "./command.ts";

interface Flags {
  debug?: boolean;
  config?: string;
  alljobs?: boolean;
  type?: string;
  email?: string;
}

/** Runs `cncopagent`. */
export async function main(argv: string[]): Promise<number> {
  let refs: string[] = [];
  const cmd = newCommand(
    "cncopagent",
    "run backup jobs: prerun, the job's agent (re-run on request), post command, report",
  )
    .argument("[job...]", "job ids or titles")
    .option("-d, --debug", "diagnostic logging to Spool/Logs (passed on to the agents)")
    .option("-c, --config <file>", "another cncop3.ini")
    .option("-a, --alljobs", "every enabled job: PULL jobs first, then PUSH, each by title")
    .option("-t, --type <type>", "every enabled job of this type (any case)")
    .option("--email <addr[,addr]>", "mail each job's result to these addresses ([mail] settings)")
    .addHelpText(
      "after",
      `
Exit status: 0 every job OK, 1 any job ERROR, 2 usage error.
A job another cncopagent is running is skipped. Logs: Logs/CA-YY-MM-DD_HHMM.log.`,
    )
    .action((jobs: string[]) => {
      refs = jobs;
    });
  if (!(await parseCommand(cmd, argv))) return 0;
  const f = cmd.opts<Flags>();
  return runDispatcher({
    selection: { all: f.alljobs, type: f.type, jobs: refs },
    debug: f.debug,
    config: f.config,
    email: f.email,
    argv,
  });
}
