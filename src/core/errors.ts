/**
 * The error types every cncop program shares.
 *
 * A {@link CncopError} is an error a user can cause or fix (bad flag, unknown job,
 * malformed ini, unreachable network): `cli/run.ts` prints it as one line, with its
 * hint, and exits with its `exitCode`. Anything else is an internal error.
 *
 * @module
 */

/** Exit codes shared by every program (the agent contract uses 0, 1 and 75). */
export const ExitCode = {
  ok: 0,
  error: 1,
  usage: 2,
  locked: 11,
  rerun: 75,
} as const;

/** Options for {@link CncopError}. */
export interface CncopErrorOptions {
  /** What the user can do about it, printed after the message. */
  hint?: string;
  /** Process exit code when this error ends a program. @default 1 */
  exitCode?: number;
  /** The underlying error. */
  cause?: unknown;
}

/**
 * An error a user can cause or fix.
 *
 * @example
 * ```ts
 * throw new CncopError("no job 17", { hint: "run 'cncopjobs list'" });
 * ```
 */
export class CncopError extends Error {
  hint: string | undefined;
  exitCode: number;
  constructor(message: string, options: CncopErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CncopError";
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? ExitCode.error;
  }
}

/** A bad command line: exits 2. */
export class UsageError extends CncopError {
  constructor(message: string, options: CncopErrorOptions = {}) {
    super(message, { exitCode: ExitCode.usage, ...options });
    this.name = "UsageError";
  }
}

/** A malformed or invalid cncop3.ini (or other configuration input). */
export class ConfigError extends CncopError {
  constructor(message: string, options: CncopErrorOptions = {}) {
    super(message, options);
    this.name = "ConfigError";
  }
}

/** A job id or title that names no job. */
export class JobNotFoundError extends CncopError {
  constructor(ref: string, options: CncopErrorOptions = {}) {
    super(`no job ${JSON.stringify(ref)}`, {
      hint: "run 'cncopjobs list' to see the jobs",
      ...options,
    });
    this.name = "JobNotFoundError";
  }
}

/** A lock another live process holds (try mode). */
export class LockedError extends CncopError {
  constructor(message: string, options: CncopErrorOptions = {}) {
    super(message, { exitCode: ExitCode.locked, ...options });
    this.name = "LockedError";
  }
}

/** The network cannot be reached or answered 5xx: worth a re-run (exit 75). */
export class TransientError extends CncopError {
  constructor(message: string, options: CncopErrorOptions = {}) {
    super(message, { exitCode: ExitCode.rerun, ...options });
    this.name = "TransientError";
  }
}

/** The network refused a request for a reason a re-run will not fix (4xx). */
export class NetworkError extends CncopError {
  status: number | undefined;
  constructor(message: string, options: CncopErrorOptions & { status?: number } = {}) {
    super(message, options);
    this.name = "NetworkError";
    this.status = options.status;
  }
}

/** A pack instruction file that is truncated, corrupted, oversized or hostile. */
export class PackRejectedError extends CncopError {
  constructor(message: string, options: CncopErrorOptions = {}) {
    super(message, options);
    this.name = "PackRejectedError";
  }
}

/** Node errno code of an error, if it has one (`ENOENT`, `EEXIST`, ...). */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === "string" ? code : undefined;
  }
  return undefined;
}

/** The message of anything thrown. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
