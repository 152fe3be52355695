/**
 * cncopd's request log: one line per HTTP request, appended to
 * `<data>/logs/requests-YYYY-MM-DD.log` (the UTC date the line is written), or to one file
 * given with `cncopd serve --request-log PATH`.
 *
 *     2026-11-22T00:31:02.123Z dev1 PATCH /v1/jobs/7/uploads/ab12 200 1048700 245 12
 *
 * Fields, space-separated: the time the request arrived (ISO, UTC), the device name (`-` when
 * the request was not authenticated), the method, the path (percent-encoded; the query string
 * is never logged, nor any header, so no token or file path reaches the log), the status
 * (`499` when the connection closed before the answer was complete), the bytes read and
 * written on the connection for the request (headers included), and the duration in ms.
 *
 * Each line is one `write` to a file opened for appending, done when the answer is complete,
 * so a reader sees every finished request at once and a crash loses no earlier line.
 *
 * @module
 */
import { closeSync, mkdirSync, openSync, readdirSync, rmSync, writeSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { join } from "node:path";

/** One request, as logged. */
export interface RequestLogEntry {
  /** When the request arrived (ms since the epoch). */
  start: number;
  device: string | undefined;
  method: string;
  path: string;
  status: number;
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
}

/** The longest path logged; longer ones are cut (the server answers 404 to them anyway). */
const MAX_PATH = 512;

/** The path of a request URL without its query, safe to log (no spaces or controls). */
export function loggedPath(url: string | undefined): string {
  let p: string;
  try {
    p = new URL(url ?? "/", "http://x").pathname;
  } catch {
    return "-";
  }
  // URL() percent-encodes spaces and controls; this only guards the line's shape.
  p = p.replace(/[^\x21-\x7e]/g, "?");
  return p.length > MAX_PATH ? p.slice(0, MAX_PATH) + "..." : p;
}

/** One log line (without the newline). */
export function formatRequestLine(e: RequestLogEntry): string {
  const device = e.device && /^[\x21-\x7e]+$/.test(e.device) ? e.device : "-";
  const method = /^[A-Z]{1,16}$/.test(e.method) ? e.method : "?";
  return `${
    new Date(e.start).toISOString()
  } ${device} ${method} ${e.path} ${e.status} ${e.bytesIn} ${e.bytesOut} ${
    Math.max(0, Math.round(e.durationMs))
  }`;
}

/** Where the lines go. */
export type RequestLogTarget =
  | { kind: "daily"; dir: string }
  | { kind: "file"; path: string }
  | { kind: "off" };

/** The daily file of `dir` for the UTC date of `at`. */
export function dailyLogPath(dir: string, at: number): string {
  return join(dir, `requests-${new Date(at).toISOString().slice(0, 10)}.log`);
}

/** The default number of days of daily request logs kept. */
export const DEFAULT_REQUEST_LOG_DAYS = 90;

/**
 * Removes the daily request logs of `dir` whose date is more than `days` days before the
 * date of `now` (0 keeps them all). Returns how many were removed.
 */
export function removeOldRequestLogs(dir: string, days: number, now = Date.now()): number {
  if (days <= 0) return 0;
  const oldest = new Date(now - days * 86400_000).toISOString().slice(0, 10);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  let n = 0;
  for (const f of names) {
    const m = /^requests-(\d{4}-\d{2}-\d{2})\.log$/.exec(f);
    if (m && m[1]! < oldest) {
      rmSync(join(dir, f), { force: true });
      n++;
    }
  }
  return n;
}

/** Appends request lines to the target's file, switching daily files at UTC midnight. */
export class RequestLog {
  #target: RequestLogTarget;
  #fd: number | undefined;
  #path: string | undefined;
  #onError: (err: unknown) => void;
  #failed = false;

  /** `onError` hears about the first failed write (the server keeps serving). */
  constructor(target: RequestLogTarget, onError: (err: unknown) => void = () => {}) {
    this.#target = target;
    this.#onError = onError;
    if (target.kind === "daily") mkdirSync(target.dir, { recursive: true, mode: 0o700 });
    // Open now so a bad path is an error at start, not a silent loss later.
    if (target.kind !== "off") this.#fileFor(Date.now());
  }

  #fileFor(at: number): number | undefined {
    const t = this.#target;
    if (t.kind === "off") return undefined;
    const path = t.kind === "file" ? t.path : dailyLogPath(t.dir, at);
    if (path !== this.#path || this.#fd === undefined) {
      if (this.#fd !== undefined) closeSync(this.#fd);
      this.#fd = undefined;
      this.#fd = openSync(path, "a", 0o600);
      this.#path = path;
    }
    return this.#fd;
  }

  /** Appends one entry. */
  write(e: RequestLogEntry): void {
    try {
      const fd = this.#fileFor(Date.now());
      if (fd !== undefined) writeSync(fd, formatRequestLine(e) + "\n");
      this.#failed = false;
    } catch (err) {
      // A full disk must not take the API down; say so once per failure streak.
      if (!this.#failed) this.#onError(err);
      this.#failed = true;
    }
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}

// Bytes of a keep-alive connection already counted for its earlier requests.
const counted = new WeakMap<Socket, { read: number; written: number }>();

/**
 * Calls `done` with the request's entry once its answer is complete or its connection
 * closed. `deviceOf` names the device once the request was authenticated.
 */
export function watchRequest(
  req: IncomingMessage,
  res: ServerResponse,
  deviceOf: () => string | undefined,
  done: (e: RequestLogEntry) => void,
): void {
  const start = Date.now();
  const t0 = performance.now();
  const socket = req.socket;
  res.once("close", () => {
    const before = counted.get(socket) ?? { read: 0, written: 0 };
    const now = { read: socket.bytesRead ?? 0, written: socket.bytesWritten ?? 0 };
    counted.set(socket, now);
    done({
      start,
      device: deviceOf(),
      method: req.method ?? "?",
      path: loggedPath(req.url),
      status: res.writableFinished ? res.statusCode : 499,
      bytesIn: Math.max(0, now.read - before.read),
      bytesOut: Math.max(0, now.written - before.written),
      durationMs: performance.now() - t0,
    });
  });
}
