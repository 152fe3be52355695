/**
 * The commander setup every program shares: `-h`, `-?` and `--help`, usage errors as
 * {@link UsageError} (one line, exit 2) instead of commander's own printing and exit.
 *
 * @module
 */
import { Command, CommanderError } from "commander";
import { UsageError } from "../core/errors.ts";

export { Command, Option } from "commander";

/**
 * A new program (or subcommand) with cncop's help flags and error handling.
 *
 * @example
 * ```ts
 * const cmd = newCommand("w", "page or follow the newest log of a program");
 * ```
 */
export function newCommand(name: string, description: string): Command {
  const cmd = new Command(name);
  cmd
    .description(description)
    .helpOption("-h, --help", "show this help (also -?)")
    .exitOverride()
    .configureOutput({ outputError: () => {}, writeErr: () => {} })
    .showHelpAfterError(false);
  return cmd;
}

/**
 * Parses `argv` (the arguments after the program name). Resolves true when the program
 * should go on, false when help or a version was shown. Throws {@link UsageError}.
 */
export async function parseCommand(cmd: Command, argv: string[]): Promise<boolean> {
  const args = argv.map((a) => (a === "-?" ? "--help" : a));
  try {
    await cmd.parseAsync(args, { from: "user" });
    return true;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version") return false;
      if (err.code === "commander.help") {
        throw new UsageError("missing command", { hint: `run '${commandPath(cmd)} --help'` });
      }
      const message = err.message.replace(/^error:\s*/, "");
      throw new UsageError(message, { hint: `run '${commandPath(cmd)} --help'` });
    }
    throw err;
  }
}

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/** Parses a non-negative integer option value, or throws a usage error naming the option. */
export function intOption(option: string): (value: string) => number {
  return (value: string) => {
    if (!/^\d+$/.test(value)) {
      throw new UsageError(`${option} must be a whole number, not ${JSON.stringify(value)}`);
    }
    return Number(value);
  };
}
