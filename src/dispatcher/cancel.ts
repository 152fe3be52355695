/**
 * Cancellation of a dispatcher run by SIGINT or SIGTERM.
 *
 * The first signal cancels: the running agent or command is asked to stop (then killed after
 * a grace period), the job ends as ERROR (cancelled) and no further job starts. Every later
 * signal forces: whatever child is still running (the post-failure command, say) is killed at
 * once. The handlers only set state and call listeners, so a signal can never loop.
 *
 * @module
 */

/** What a listener is told: the first signal (`cancel`) or a later one (`force`). */
export type CancelEvent = "cancel" | "force";

/** The cancellation state of one dispatcher run. */
export interface Cancellation {
  /** True once the first signal arrived. */
  readonly cancelled: boolean;
  /** The signal that cancelled (`SIGTERM`, `SIGINT`), once cancelled. */
  readonly reason: string | undefined;
  /** Calls `fn` on each event from now on; returns the unsubscribe function. */
  listen(fn: (event: CancelEvent) => void): () => void;
  /** Cancels (first call) or forces (later calls), as a signal would. */
  trigger(reason: string): void;
}

/**
 * A new cancellation state, not yet tied to signals.
 *
 * @example
 * ```ts
 * const c = createCancellation();
 * const stop = c.listen((e) => child.kill(e === "force" ? "SIGKILL" : "SIGTERM"));
 * ```
 */
export function createCancellation(): Cancellation {
  const listeners = new Set<(event: CancelEvent) => void>();
  let reason: string | undefined;
  return {
    get cancelled() {
      return reason !== undefined;
    },
    get reason() {
      return reason;
    },
    listen(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    trigger(why) {
      const event: CancelEvent = reason === undefined ? "cancel" : "force";
      reason ??= why;
      for (const fn of [...listeners]) fn(event);
    },
  };
}

/** Ties `c` to SIGINT and SIGTERM; returns the function that unties it. */
export function cancelOnSignals(c: Cancellation): () => void {
  const signals = ["SIGINT", "SIGTERM"] as const;
  const handlers = signals.map((s) => {
    const h = () => c.trigger(s);
    process.on(s, h);
    return [s, h] as const;
  });
  return () => {
    for (const [s, h] of handlers) process.off(s, h);
  };
}

/** Waits `ms`, or less when `c` is cancelled meanwhile. */
export function cancellableSleep(ms: number, c: Cancellation): Promise<void> {
  if (c.cancelled || ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const stop = c.listen(() => {
      clearTimeout(timer);
      stop();
      resolve();
    });
    const timer = setTimeout(() => {
      stop();
      resolve();
    }, ms);
  });
}
