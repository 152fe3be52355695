/**
 * Dispatch of the multi-call entry: runs the program named by the name it was started under
 * (`cncopagent`, `backupagentnq`, ...) or by its first argument (`cncop <program> ...`).
 *
 * @module
 */
import { basename } from "node:path";
import { programs } from "./programs.ts";
import { runProgram } from "./run.ts";

/** The program name a path was started under, without extension. */
export function programNameOf(path: string): string {
  return basename(path).replace(/\.(ts|mjs|js|exe|cmd)$/i, "");
}

function usage(): string {
  const width = Math.max(...Object.keys(programs).map((n) => n.length));
  const lines = Object.entries(programs).map(([n, p]) => `  ${n.padEnd(width)}  ${p.summary}`);
  return [
    "Usage: cncop <program> [options]   (or start the executable under a program's name)",
    "",
    "Programs:",
    ...lines,
    "",
    "Every program takes -h, -? or --help.",
  ].join("\n");
}

/** Dispatches and resolves to the exit code. */
export async function dispatch(argv0: string, args: string[]): Promise<number> {
  let name = programNameOf(argv0);
  if (!(name in programs)) {
    const [first, ...rest] = args;
    if (
      first === undefined || first === "-h" || first === "--help" || first === "-?" ||
      first === "help"
    ) {
      process.stdout.write(usage() + "\n");
      return first === undefined ? 2 : 0;
    }
    if (first === "--version" || first === "-V") {
      name = "version";
      args = [];
    } else if (!(first in programs)) {
      process.stderr.write(
        `cncop: unknown program ${JSON.stringify(first)} - run 'cncop --help'\n`,
      );
      return 2;
    } else {
      name = first;
      args = rest;
    }
  }
  const entry = programs[name]!;
  const mod = await entry.load();
  return runProgram(name, mod.main, args);
}
