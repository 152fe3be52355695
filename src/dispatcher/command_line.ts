/**
 * Splitting a pre/post command string into a program and its arguments, without a shell.
 *
 * Words are separated by whitespace; single or double quotes group a word and are removed.
 * There are no escapes (a backslash is an ordinary character, as in Windows paths) and no
 * expansion of variables, globs or `~`: the command runs exactly as written.
 *
 * @module
 */
import { CncopError } from "../core/errors.ts";

/**
 * Splits `line` into words.
 *
 * @example
 * ```ts
 * splitCommandLine(`prep.sh --dir "My Files" 'a b'`); // ["prep.sh", "--dir", "My Files", "a b"]
 * ```
 * @throws {CncopError} on an unterminated quote.
 */
export function splitCommandLine(line: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let quote: string | undefined;
  for (const ch of line) {
    if (quote !== undefined) {
      if (ch === quote) quote = undefined;
      else word += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (quote !== undefined) {
    throw new CncopError(`unterminated ${quote} quote in command ${JSON.stringify(line)}`, {
      hint: "close the quote in the job's command (cncopjobs edit)",
    });
  }
  if (inWord) words.push(word);
  return words;
}
