/**
 * Following a program's logs as they grow (`w -f`): like `tail -F`, and it moves on to a
 * newer log of the same program when one appears.
 *
 * @module
 */
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { newestLog } from "./log_find.ts";

/** Where followed text goes. */
export interface Sink {
  write(chunk: string | Uint8Array): unknown;
}

/**
 * Writes the log at `start` (or the newest one) and everything appended, until `signal`
 * aborts (or SIGINT when none is given). Polls: it works the same on every filesystem.
 */
export async function followLog(
  dir: string,
  prefix: string,
  start: string | undefined,
  out: Sink,
  options: { signal?: AbortSignal; intervalMs?: number } = {},
): Promise<void> {
  const interval = options.intervalMs ?? 250;
  let signal = options.signal;
  let onSigint: (() => void) | undefined;
  if (!signal) {
    const ac = new AbortController();
    onSigint = () => ac.abort();
    process.once("SIGINT", onSigint);
    signal = ac.signal;
  }
  let path = start;
  let offset = 0;
  const buf = Buffer.alloc(64 * 1024);
  try {
    while (!signal.aborted) {
      if (path) {
        let size = 0;
        try {
          size = statSync(path).size;
        } catch {
          size = -1; // pruned or moved: look for the newest again
        }
        if (size >= 0) {
          if (size < offset) offset = 0; // truncated: start over
          if (size > offset) {
            const fd = openSync(path, "r");
            try {
              let n: number;
              while ((n = readSync(fd, buf, 0, buf.length, offset)) > 0) {
                out.write(buf.subarray(0, n));
                offset += n;
              }
            } finally {
              closeSync(fd);
            }
          }
        }
      }
      const newest = newestLog(dir, prefix);
      if (newest && newest.path !== path) {
        if (path) out.write(`\n==> ${newest.path} <==\n`);
        path = newest.path;
        offset = 0;
        continue;
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, interval);
        signal!.addEventListener("abort", () => {
          clearTimeout(t);
          resolve();
        }, { once: true });
      });
    }
  } finally {
    if (onSigint) process.off("SIGINT", onSigint);
  }
}
