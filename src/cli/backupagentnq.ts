/**
 * `backupagentnq [options] [job ...]`: the CCS enqueuer (peek, pack, prune). Exit status
 * follows the agent contract: 0 OK, 1 ERROR, 75 RE-RUN.
 *
 * @module
 */
import { addCcsOptions, type CcsOptions } from "../ccs/cli_options.ts";
import { runNq } from "../ccs/nq.ts";
import { appContext } from "../core/context.ts";
import { UsageError } from "../core/errors.ts";
import { newCommand, parseCommand } from "./command.ts";

/** Runs `backupagentnq`. */
export async function main(argv: string[]): Promise<number> {
  const cmd = addCcsOptions(
    newCommand("backupagentnq", "CCS enqueuer: peek, move promotion, pack, prune"),
  );
  if (!(await parseCommand(cmd, argv))) return 0;
  const o = cmd.opts<CcsOptions>();
  if (o.usefork && o.nofork) {
    throw new UsageError("--usefork and --nofork exclude each other", { hint: "give one" });
  }
  const debug = o.debug || o.debug2 || o.debug3;
  const ctx = appContext({ config: o.config, debug });
  return await runNq(ctx, cmd.processedArgs[0] as string[], {
    dryRun: o.dryrun,
    noMaxDelete: o.nomaxdelete,
    noAppLock: o.noapplock,
    skipMoves: o.skipmoves,
    skipDeletes: o.skipdeletes,
    skipPeekSource: o.skippeeksource,
    skipPeekCloud: o.skippeekcloud,
    forcePeek: o.forcepeek,
    nicld: o.nicld,
    suppressMissing: o.suppressmissing,
    savePeek: o.savepeek,
    peekLog: o.peeklog,
    noLinks: o.nolinks,
    fork: o.usefork ? "on" : o.nofork ? "off" : "auto",
    useVss: o.usevss,
  });
}
