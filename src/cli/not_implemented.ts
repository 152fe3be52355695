/**
 * The one allowed placeholder: a program whose issue has not landed yet.
 *
 * @module
 */
import type { ProgramMain } from "./run.ts";

/** A program body that says it is not implemented yet and exits 2. */
export function notImplemented(program: string): ProgramMain {
  return (argv: string[]) => {
    if (argv.includes("-h") || argv.includes("--help") || argv.includes("-?")) {
      process.stdout.write(`Usage: ${program} ...\n\n${program} is not implemented yet.\n`);
      return Promise.resolve(0);
    }
    process.stderr.write(`${program}: not implemented yet\n`);
    return Promise.resolve(2);
  };
}
