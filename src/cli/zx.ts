/**
 * `zx SCRIPT [args...]`: runs a zx script (`.mjs`) with zx's globals (`$`, `cd`, `fs`,
 * `argv`, ...), using the zx built into this executable, so pre/post commands written in zx
 * run even where no Node.js is installed. cncopagent runs `.mjs` commands through it.
 *
 * @module
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { UsageError } from "../core/errors.ts";
import { redirectZxImports } from "./zx_imports.ts";

const usage = `Usage: zx SCRIPT.mjs [args...]

Runs a zx script with zx's globals ($, cd, fs, argv, ...) from the zx built into cncop.
The script's exit status is the program's.
`;

/** Runs `zx`. */
export async function main(argv: string[]): Promise<number> {
  const [script, ...args] = argv;
  if (script === "-h" || script === "--help" || script === "-?") {
    process.stdout.write(usage);
    return 0;
  }
  if (script === undefined) {
    throw new UsageError("no script given", { hint: "run 'cncop zx --help'" });
  }
  const file = resolve(script);
  // The script sees itself as argv[1] and its own arguments after it, as under zx's CLI.
  process.argv = [process.argv[0]!, file, ...args];
  await import("zx/globals");
  redirectZxImports(await import("zx"));
  await import(pathToFileURL(file).href);
  return typeof process.exitCode === "number" ? process.exitCode : 0;
}
