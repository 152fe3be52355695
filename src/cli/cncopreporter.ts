/**
 * `cncopreporter [-d] [-c CONFIG]`: sends the reports in Spool/Messages to the network (JE,
 * then JS, then JF) and removes each once acknowledged.
 *
 * @module
 */
import { runReporter } from "../ccs/reporter.ts";
import { appContext } from "../core/context.ts";
import { newCommand, parseCommand } from "./command.ts";

/** Runs `cncopreporter`. */
export async function main(argv: string[]): Promise<number> {
  const cmd = newCommand("cncopreporter", "store and forward of job reports to the cncop network")
    .option("-d, --debug", "diagnostic log in Spool/Logs")
    .option("-c, --config <file>", "another cncop3.ini");
  if (!(await parseCommand(cmd, argv))) return 0;
  const o = cmd.opts<{ debug?: boolean; config?: string }>();
  const ctx = appContext({ config: o.config, debug: o.debug });
  return (await runReporter(ctx)).code;
}
