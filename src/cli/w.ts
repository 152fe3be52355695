/**
 * `w [PREFIX] [--daysago N] [-f]`: page or follow the newest log of a program.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { createReadStream, readFileSync } from "node:fs";
import { appContext } from "../core/context.ts";
import { CncopError } from "../core/errors.ts";
import { followLog } from "../core/log_follow.ts";
import { newestLog } from "../core/log_find.ts";
import { intOption, newCommand, parseCommand } from "./command.ts";

/** Runs `w`. */
export async function main(argv: string[]): Promise<number> {
  const cmd = newCommand("w", "page or follow the newest log of a program")
    .argument("[prefix]", "log prefix: CA (cncopagent), NQ, NQU, DQ, RP, NQPK, ...", "CA")
    .option("--daysago <n>", "the newest log from N days ago (0 = today)", intOption("--daysago"))
    .option("-f, --follow", "follow the log as it grows (and switch to newer ones)")
    .option("--spool", "look in Spool/Logs (the -d diagnostic logs) instead of Logs/")
    .option("-c, --config <file>", "another cncop3.ini");
  if (!(await parseCommand(cmd, argv))) return 0;
  const opts = cmd.opts<{ daysago?: number; follow?: boolean; spool?: boolean; config?: string }>();
  const prefix = (cmd.processedArgs[0] as string).toUpperCase();
  const ctx = appContext({ config: opts.config });
  const dir = opts.spool ? ctx.paths.spoolLogs : ctx.paths.logs;
  const log = newestLog(dir, prefix, opts.daysago);
  if (opts.follow) {
    if (opts.daysago) throw new CncopError("--follow follows today's log; drop --daysago");
    await followLog(dir, prefix, log?.path, process.stdout);
    return 0;
  }
  if (!log) {
    const when = opts.daysago === undefined ? "" : ` from ${opts.daysago} day(s) ago`;
    throw new CncopError(`no ${prefix} log${when} in ${dir}`, {
      hint: "give another prefix or --daysago, or -f to wait for one",
    });
  }
  if (process.stdout.isTTY) {
    const pager = process.env.PAGER || "less";
    const res = spawnSync(pager, [log.path], { stdio: "inherit" });
    if (!res.error) return 0;
    // No pager on this machine: print instead.
    process.stdout.write(readFileSync(log.path));
    return 0;
  }
  await new Promise<void>((resolve, reject) => {
    createReadStream(log.path).on("error", reject).on("end", resolve).pipe(process.stdout, {
      end: false,
    });
  });
  return 0;
}
