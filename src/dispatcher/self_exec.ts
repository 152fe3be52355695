/**
 * How the dispatcher starts another program of the cncop multi-call executable when Bin/ has
 * no file of that name: the same executable it runs from, with the program name first.
 *
 * - Single executable (SEA): `<process.execPath> <program> args...`
 * - Node on the sources: `<node> <NODE_FLAGS> src/cli/main.ts <program> args...`
 * - Deno on the sources: `<deno> run -A --v8-flags=<NODE_FLAGS> src/cli/main.ts <program> args...`
 *
 * `CNCOP_ARGV0` is set to a neutral name in the child's environment, so the child takes its
 * program from the first argument and never from the name the dispatcher was started under.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { isSingleExecutable } from "../core/home.ts";
import { NODE_FLAGS } from "../core/runtime_flags.ts";

/** A program to spawn: file, leading arguments, extra environment. */
export interface Launch {
  file: string;
  args: string[];
  env: Record<string, string>;
}

/** The multi-call entry point of the sources this module belongs to. */
export const mainScript: string = fileURLToPath(new URL("../cli/main.ts", import.meta.url));

function isDeno(): boolean {
  return typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
}

/**
 * The command line that runs `program` of this executable with `args`.
 *
 * @example
 * ```ts
 * const l = selfLaunch("zx", ["/home/Bin/prep.mjs"]);
 * spawn(l.file, l.args, { env: { ...process.env, ...l.env } });
 * ```
 */
export function selfLaunch(program: string, args: string[]): Launch {
  const env = { CNCOP_ARGV0: "cncop" };
  if (isSingleExecutable()) return { file: process.execPath, args: [program, ...args], env };
  const runtimeArgs = isDeno()
    ? ["run", "-A", `--v8-flags=${NODE_FLAGS.join(",")}`, mainScript]
    : [...NODE_FLAGS, mainScript];
  return { file: process.execPath, args: [...runtimeArgs, program, ...args], env };
}
