/**
 * Runs a program body and turns what it throws into one line on stderr and an exit code.
 *
 * A {@link CncopError} prints as `prog: message - hint` and exits with its code; anything
 * else is an internal error: one line, the stack only with `-d` or `CNCOP_DEBUG=1`.
 *
 * @module
 */
import { CncopError, ExitCode, messageOf } from "../core/errors.ts";

/** A program: takes the arguments after its name, resolves to an exit code. */
export type ProgramMain = (argv: string[]) => Promise<number>;

/** Formats an error as the one line a user sees. */
export function formatError(program: string, err: unknown): string {
  if (err instanceof CncopError) {
    return `${program}: ${err.message}${err.hint ? ` - ${err.hint}` : ""}`;
  }
  return `${program}: internal error: ${messageOf(err)}`;
}

/** Runs `main(argv)`; never throws. */
export async function runProgram(
  program: string,
  main: ProgramMain,
  argv: string[],
): Promise<number> {
  try {
    return await main(argv);
  } catch (err) {
    process.stderr.write(formatError(program, err) + "\n");
    const debug = argv.includes("-d") || argv.includes("--debug") ||
      process.env.CNCOP_DEBUG === "1";
    if (!(err instanceof CncopError) || debug) {
      if (debug && err instanceof Error && err.stack) process.stderr.write(err.stack + "\n");
    }
    return err instanceof CncopError ? err.exitCode : ExitCode.error;
  }
}
