/**
 * Lowering the CPU priority of the running process, every thread of it included.
 *
 * On Linux a nice value belongs to a thread: `setpriority(PRIO_PROCESS, 0)` changes only the
 * calling one, and a new thread starts with its creator's. So each thread there now (the V8
 * and libuv helpers, the native addon's pools) is lowered by its id from /proc/self/task;
 * threads started later inherit the value. Elsewhere the priority is the process's.
 *
 * @module
 */
import { readdirSync } from "node:fs";
import { getPriority, setPriority } from "node:os";

/** The lowest priority there is (the highest nice value). */
export const LOWEST_NICE = 19;

/**
 * Raises the nice value of this process by `by` (capped at {@link LOWEST_NICE}) and returns
 * the new one; `by` 0 changes nothing. Throws when the system refuses.
 */
export function lowerPriority(by: number): number {
  const now = getPriority();
  if (by <= 0) return now;
  const to = Math.min(LOWEST_NICE, now + by);
  if (process.platform !== "linux") {
    setPriority(0, to);
    return getPriority();
  }
  for (const tid of threadIds()) {
    try {
      // Only ever lowered: a thread already below `to` keeps its value.
      if (getPriority(tid) < to) setPriority(tid, to);
    } catch (err) {
      // A helper thread that ended since the listing.
      if (!gone(err)) throw err;
    }
  }
  return getPriority();
}

/** Whether `err` says the thread is no more (Node wraps the errno in `info`). */
function gone(err: unknown): boolean {
  const e = err as { code?: string; info?: { code?: string } };
  return e.code === "ESRCH" || e.info?.code === "ESRCH";
}

/** The ids of this process's threads (Linux), the calling one first. */
function threadIds(): number[] {
  const tids = readdirSync("/proc/self/task").map(Number).filter((t) => t !== process.pid);
  return [process.pid, ...tids];
}
