/**
 * Portable twin of the OS file lock. Node has no flock, so this is a lock file that names
 * its holder (`pid start-time token`) and is taken over when that process is gone, so a
 * `kill -9`ed holder never blocks the next run.
 *
 * - Taking a free lock: the content is written to a scratch file, then hard-linked to the
 *   lock path; link(2) fails when the path exists, so exactly one racer wins, and the lock
 *   file never exists half-written.
 * - Taking over a stale lock (holder dead, or its pid now belongs to a younger process):
 *   under a short-lived guard file (same link trick), re-read the lock, and only if it
 *   still names the same dead holder, rename our content over it. The guard makes
 *   "still stale?" and "replace" one step for all racers.
 * - Not re-entrant: a second lockFile() from the holder's own process finds a live holder.
 *
 * Limits: the start time comes from /proc on Linux and `ps` elsewhere; on Windows only the
 * pid is checked. Native and portable locks do not see each other: one installation uses
 * one of them for all its processes.
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { link, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import type { FileLock } from "../types.ts";

/** How long a takeover guard may live before it is considered abandoned. */
const GUARD_STALE_MS = 10_000;

/** Start time of process `pid` as an opaque string, "" when unknown, null when not running. */
export function processStart(pid: number): string | null {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ESRCH") return null;
    // EPERM: alive, owned by someone else
  }
  if (process.platform === "linux") {
    try {
      const s = readFileSync(`/proc/${pid}/stat`, "utf8");
      // Fields after the parenthesised command name: state is 3rd, starttime 22nd.
      const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
      if (rest[0] === "Z" || rest[0] === "X") return null; // zombie: dead, not yet reaped
      return rest[19] ?? "";
    } catch {
      return null;
    }
  }
  if (process.platform === "win32") return "";
  try {
    return execFileSync("ps", ["-o", "lstart=", "-p", String(pid)], { encoding: "utf8" }).trim() ||
      null;
  } catch {
    return null;
  }
}

const myStart = processStart(process.pid) ?? "";

interface Holder {
  pid: number;
  start: string;
  token: string;
}

function parse(text: string): Holder | null {
  const m = /^(\d+) (.*) ([0-9a-f]{32})\n$/.exec(text);
  if (!m) return null;
  return { pid: Number(m[1]), start: m[2]!, token: m[3]! };
}

function alive(h: Holder): boolean {
  const start = processStart(h.pid);
  return start !== null && (start === "" || h.start === "" || start === h.start);
}

async function readOrNull(path: string): Promise<string | null> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

/** Creates `path` with `content` atomically; false when it exists. */
async function createExclusive(path: string, content: string): Promise<boolean> {
  const scratch = `${path}.${process.pid}.${randomBytes(6).toString("hex")}`;
  await writeFile(scratch, content);
  try {
    await link(scratch, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  } finally {
    await rm(scratch, { force: true });
  }
}

/** Replaces a stale lock whose content is still `seen`; true when we now hold it. */
async function takeOver(path: string, seen: string, content: string): Promise<boolean> {
  const guard = `${path}.takeover`;
  if (!(await createExclusive(guard, content))) {
    try {
      const st = await stat(guard);
      if (Date.now() - st.mtimeMs > GUARD_STALE_MS) await rm(guard, { force: true });
    } catch {
      // gone already
    }
    return false;
  }
  try {
    if ((await readOrNull(path)) !== seen) return false;
    const scratch = `${path}.${process.pid}.${randomBytes(6).toString("hex")}`;
    await writeFile(scratch, content);
    await rename(scratch, path);
    return true;
  } finally {
    await rm(guard, { force: true });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Takes the lock at `path`; `wait` false gives null when a live process holds it.
 *
 * @example
 * ```ts
 * const lock = await lockFile("/var/lib/cncop/job-17.lock", false);
 * if (lock === null) console.log("job 17 is running");
 * else try { await run(); } finally { lock.release(); }
 * ```
 */
export async function lockFile(path: string, wait: boolean): Promise<FileLock | null> {
  const token = randomBytes(16).toString("hex");
  const content = `${process.pid} ${myStart} ${token}\n`;
  let delay = 20;
  for (;;) {
    if (await createExclusive(path, content)) return held(path, token);
    const seen = await readOrNull(path);
    if (seen === null) continue; // released in between
    const h = parse(seen);
    const stale = h === null
      ? Date.now() - ((await stat(path).catch(() => null))?.mtimeMs ?? 0) > GUARD_STALE_MS
      : !alive(h);
    if (stale && (await takeOver(path, seen, content))) return held(path, token);
    if (!stale && !wait) return null;
    await sleep(stale ? 5 : delay);
    delay = Math.min(delay * 2, 500);
  }
}

function held(path: string, token: string): FileLock {
  let released = false;
  return {
    release(): void {
      if (released) return;
      released = true;
      // Synchronous so release() works in exit handlers; only remove our own lock.
      try {
        const h = parse(readFileSync(path, "utf8"));
        if (h?.token === token) rmSync(path, { force: true });
      } catch {
        // already gone
      }
    },
  };
}
