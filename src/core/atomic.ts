/**
 * Atomic file writes: a temporary file beside the target, fsync, rename, fsync of the
 * directory. A crash at any instant leaves the old content or the new, never a torn file.
 *
 * @module
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/** Fsyncs a directory so a rename inside it is durable (a no-op where unsupported). */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // Windows cannot open directories for fsync; rename there is already durable enough.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** A temporary name in the same directory as `path` (so rename stays on one filesystem). */
export function tempPathFor(path: string): string {
  const rand = Math.random().toString(36).slice(2, 10);
  return join(dirname(path), `.${basename(path)}.${process.pid}.${rand}.tmp`);
}

/**
 * Writes `data` to `path` atomically.
 *
 * @example
 * ```ts
 * writeFileAtomic("Config/cncop3.ini", text);
 * ```
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = tempPathFor(path);
  const fd = openSync(tmp, "wx", mode);
  try {
    const buf = typeof data === "string" ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dirname(path));
}
