/**
 * Pre/post commands of a job: confinement to `Bin/` and running them.
 *
 * A command's program must resolve, after `..` and symlinks, to a file inside `Bin/` of the
 * application directory; a relative program is taken relative to `Bin/`. Anything else is
 * refused before it runs. A `.mjs` program is a zx script: it runs through this executable's
 * `zx` program, so `$` works even where no Node.js is installed.
 *
 * @module
 */
import { realpathSync, statSync } from "node:fs";
import { isAbsolute, relative, resolve, sep } from "node:path";
import { CncopError, errnoCode } from "../core/errors.ts";
import type { Job } from "../core/jobs_db.ts";
import type { Logger } from "../core/log.ts";
import type { Cancellation } from "./cancel.ts";
import { splitCommandLine } from "./command_line.ts";
import { type ChildOutcome, runChild } from "./run_child.ts";
import { type Launch, selfLaunch } from "./self_exec.ts";

/** The three commands of a job. */
export type HookKind = "prerun" | "postrun-success" | "postrun-failure";

/** A command refused before it ran (outside Bin/, missing, malformed). */
export class CommandRefusedError extends CncopError {
  constructor(message: string) {
    super(message, { hint: "put the program in Bin/ of the application directory" });
    this.name = "CommandRefusedError";
  }
}

function inside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  if (rel === "" || isAbsolute(rel)) return false;
  return rel !== ".." && !rel.startsWith(`..${sep}`);
}

/**
 * Resolves a command string to what runs, confined to `binDir`.
 *
 * @example
 * ```ts
 * resolveCommand("/app/Bin", "prep.sh --fast"); // { file: "/app/Bin/prep.sh", args: ["--fast"] }
 * resolveCommand("/app/Bin", "../Config/x");   // throws CommandRefusedError
 * ```
 * @throws {CommandRefusedError}
 */
export function resolveCommand(binDir: string, command: string): Launch {
  let words: string[];
  try {
    words = splitCommandLine(command);
  } catch (err) {
    throw new CommandRefusedError(err instanceof Error ? err.message : String(err));
  }
  const [program, ...args] = words;
  if (program === undefined) throw new CommandRefusedError("the command is empty");
  const candidate = resolve(binDir, program);
  let realBin: string;
  let real: string;
  try {
    realBin = realpathSync(binDir);
  } catch (err) {
    throw new CommandRefusedError(`${binDir} is unreadable (${errnoCode(err) ?? err})`);
  }
  try {
    real = realpathSync(candidate);
  } catch (err) {
    const code = errnoCode(err);
    if (code === "ENOENT") {
      throw new CommandRefusedError(`${JSON.stringify(program)} does not exist (${candidate})`);
    }
    throw new CommandRefusedError(`${JSON.stringify(program)} is unreadable (${code ?? err})`);
  }
  const fold = (p: string) => (process.platform === "win32" ? p.toLowerCase() : p);
  if (!inside(fold(realBin), fold(real))) {
    throw new CommandRefusedError(
      `${JSON.stringify(program)} resolves to ${real}, outside ${realBin}`,
    );
  }
  if (!statSync(real).isFile()) {
    throw new CommandRefusedError(`${JSON.stringify(program)} is not a file (${real})`);
  }
  if (real.toLowerCase().endsWith(".mjs")) return selfLaunch("zx", [real, ...args]);
  return { file: real, args, env: {} };
}

/** What happened to one command. */
export interface HookResult {
  kind: HookKind;
  command: string;
  /** Refused before it ran: why. */
  refused?: string;
  outcome?: ChildOutcome;
  /** True when it ran and exited 0. */
  ok: boolean;
}

/** Options of {@link runHook}. */
export interface RunHookOptions {
  binDir: string;
  job: Job;
  kind: HookKind;
  command: string;
  /** Environment for the command (CNCOP_JOB_* and so on). */
  env: Record<string, string>;
  log: Logger;
  cancel: Cancellation;
  graceMs: number;
}

/** The environment a command of `job` gets. */
export function hookEnv(
  job: Job,
  home: string,
  session: string,
  result?: string,
): Record<string, string> {
  return {
    CNCOP_JOB_ID: String(job.id),
    CNCOP_JOB_TITLE: job.title,
    CNCOP_JOB_TYPE: job.type,
    CNCOP_HOME: home,
    CNCOP_JOB_SESSION: session,
    ...(result === undefined ? {} : { CNCOP_JOB_RESULT: result }),
  };
}

/**
 * Runs one command of a job with the job's time limit; output goes into the CA log.
 * The post-failure command is not stopped by the first cancelling signal (it is what runs
 * because of it); every other command is.
 */
export async function runHook(o: RunHookOptions): Promise<HookResult> {
  let launch: Launch;
  try {
    launch = resolveCommand(o.binDir, o.command);
  } catch (err) {
    const refused = err instanceof Error ? err.message : String(err);
    o.log.error(`${o.kind} command refused: ${refused}`);
    return { kind: o.kind, command: o.command, refused, ok: false };
  }
  o.log.info(`${o.kind}: ${o.command}`);
  const outcome = await runChild({
    launch,
    env: o.env,
    log: o.log,
    prefix: `[${o.kind}] `,
    timeoutMs: o.job.commandTimeout * 1000,
    cancel: o.cancel,
    cancellable: o.kind !== "postrun-failure",
    graceMs: o.graceMs,
  });
  const ok = outcome.code === 0 && !outcome.timedOut && !outcome.cancelled &&
    outcome.spawnError === undefined;
  return { kind: o.kind, command: o.command, outcome, ok };
}

/** The first `max` bytes of `buf` as text, never cutting a UTF-8 character in two. */
export function utf8Head(buf: Buffer, max: number): string {
  let end = Math.min(buf.length, max);
  // Back off from continuation bytes so the cut falls on a character boundary.
  if (end < buf.length) { while (end > 0 && (buf[end]! & 0xc0) === 0x80) end--; }
  return buf.subarray(0, end).toString("utf8");
}
