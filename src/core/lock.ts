/**
 * Job locks and application locks, shared by every program.
 *
 * A lock is an OS file lock (flock / LockFileEx) taken through the native core, or, when the
 * addon is not loaded, its portable twin (a lock file naming a live holder). Either way a lock
 * never outlives its holder: after `kill -9` the next run proceeds without any cleanup.
 *
 * @module
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { getNativeCore } from "../native/mod.ts";
import type { FileLock } from "../native/types.ts";
import { LockedError } from "./errors.ts";
import type { HomePaths } from "./home.ts";

/** `try`: give up at once when held; `wait`: wait until free (or the timeout). */
export type LockMode = "try" | "wait";

/** Options of {@link acquireLock}. */
export interface LockOptions {
  mode: LockMode;
  /** What the lock guards, for messages: `job 7 "Docs"`, `the application`. */
  what: string;
  /** Wait mode: give up after this many milliseconds. @default forever */
  timeoutMs?: number;
  /** Wait mode: stop waiting when aborted. */
  signal?: AbortSignal;
  /** Wait mode: called once when the lock is found held and waiting starts. */
  onWait?: () => void;
}

/** A held lock. */
export interface HeldLock {
  readonly path: string;
  release(): void;
}

/** The lock file of job `jobId`. */
export function jobLockPath(paths: HomePaths, jobId: number): string {
  return join(paths.work, `job-${jobId}.lock`);
}

/** The lock file of the application lock named `name` (e.g. `backupagentnq`). */
export function appLockPath(paths: HomePaths, name: string): string {
  return join(paths.work, `app-${name}.lock`);
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });

/**
 * Takes the lock at `path`.
 *
 * Waiting polls the non-blocking lock with a growing pause (at most 500 ms), so a waiting
 * program keeps answering signals and timers, and a timeout is exact to that pause.
 *
 * @throws {LockedError} in try mode when held, in wait mode on timeout or abort.
 */
export async function acquireLock(path: string, options: LockOptions): Promise<HeldLock> {
  mkdirSync(join(path, ".."), { recursive: true });
  const core = getNativeCore();
  const started = Date.now();
  let pause = 20;
  let told = false;
  for (;;) {
    const held: FileLock | null = await core.lockFile(path, false);
    if (held) {
      let released = false;
      return {
        path,
        release: () => {
          if (released) return;
          released = true;
          held.release();
        },
      };
    }
    if (options.mode === "try") {
      throw new LockedError(`${options.what} is locked by another running process`, {
        hint: "wait for it to finish",
      });
    }
    if (!told) {
      told = true;
      options.onWait?.();
    }
    if (options.signal?.aborted) {
      throw new LockedError(`gave up waiting for ${options.what}: cancelled`);
    }
    if (options.timeoutMs !== undefined && Date.now() - started >= options.timeoutMs) {
      throw new LockedError(
        `${options.what} is still locked after ${formatWait(options.timeoutMs)}`,
        { hint: "another run holds it; try again later" },
      );
    }
    await sleep(pause, options.signal);
    pause = Math.min(500, pause * 2);
  }
}

function formatWait(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 1000)} s` : `${ms} ms`;
}

/** Runs `fn` holding the lock; releases it however `fn` ends. */
export async function withLock<T>(
  path: string,
  options: LockOptions,
  fn: () => Promise<T>,
): Promise<T> {
  const lock = await acquireLock(path, options);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
