/**
 * Program logs: one module every program uses.
 *
 * Names, as DESIGN.md gives them:
 * - per run (`session`): `CA-YY-MM-DD_HHMM.log`, then `-001`, `-002`, ... when taken;
 * - per day (`daily`): `NQ-YYYY-MM-DD.log`, `NQU-...`, appended by every run that day;
 * - unique (`unique`): `NQPK-YYYY-MM-DD_HHMMSS-NNN.log`, one file per call.
 * With `-d`, every line and the diagnostic ones go to `Spool/Logs/<PREFIX>-YYYY-MM-DD.log`.
 *
 * Each open log leaves a marker in `<dir>/.open/` so {@link pruneLogs} never removes a log
 * that is still being written.
 *
 * @module
 */
import {
  closeSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { errnoCode } from "./errors.ts";

/** How a log file is named. */
export type LogStyle = "session" | "daily" | "unique";

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

/** The base name of a log (without a collision suffix) for `prefix` at local time `at`. */
export function logBaseName(prefix: string, style: LogStyle, at: Date): string {
  const y4 = at.getFullYear();
  const mo = pad(at.getMonth() + 1);
  const d = pad(at.getDate());
  const hm = `${pad(at.getHours())}${pad(at.getMinutes())}`;
  if (style === "session") return `${prefix}-${pad(y4 % 100)}-${mo}-${d}_${hm}`;
  if (style === "daily") return `${prefix}-${y4}-${mo}-${d}`;
  return `${prefix}-${y4}-${mo}-${d}_${hm}${pad(at.getSeconds())}`;
}

/**
 * Creates a new log file named `<base>.log`, else `<base>-001.log`, `-002`, ... and returns
 * its path and fd. Creation is exclusive, so two processes never share a name.
 */
export function createUniqueLog(dir: string, base: string): { path: string; fd: number } {
  for (let n = 0; n < 100000; n++) {
    const path = join(dir, n === 0 ? `${base}.log` : `${base}-${pad(n, 3)}.log`);
    try {
      return { path, fd: openSync(path, "wx", 0o644) };
    } catch (err) {
      if (errnoCode(err) !== "EEXIST") throw err;
    }
  }
  throw new Error(`no free log name for ${base} in ${dir}`);
}

/** Options of {@link openLog}. */
export interface OpenLogOptions {
  /** Directory of the log (normally `Logs/`). */
  dir: string;
  /** File name prefix: CA, NQ, NQU, DQ, RP, ... */
  prefix: string;
  style: LogStyle;
  /** Program name written on each line. */
  program: string;
  /** With `-d`: directory for the diagnostic log (normally `Spool/Logs/`). */
  debugDir?: string;
  /** Also write each line to stderr (when no log file is wanted, or for a terminal). */
  echo?: boolean;
  /** Clock, for tests. */
  now?: () => Date;
}

/** A log being written. Lines are written synchronously: they survive a crash. */
export interface Logger {
  readonly path: string;
  readonly debugPath: string | undefined;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** Written only to the diagnostic log (with `-d`). */
  debug(message: string): void;
  /** Writes raw text (e.g. a child's output) as-is, line by line, prefixed. */
  raw(prefix: string, text: string): void;
  close(): void;
}

function stamp(at: Date): string {
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} ${
    pad(at.getHours())
  }:${pad(at.getMinutes())}:${pad(at.getSeconds())}.${pad(at.getMilliseconds(), 3)}`;
}

function markerDir(dir: string): string {
  return join(dir, ".open");
}

function openMarker(dir: string, logName: string): string {
  const mdir = markerDir(dir);
  mkdirSync(mdir, { recursive: true });
  const marker = join(mdir, `${logName}@${process.pid}`);
  writeFileSync(marker, "");
  return marker;
}

/** Opens a program log. */
export function openLog(options: OpenLogOptions): Logger {
  const now = options.now ?? (() => new Date());
  mkdirSync(options.dir, { recursive: true });
  const base = logBaseName(options.prefix, options.style, now());
  let path: string;
  let fd: number;
  if (options.style === "daily") {
    path = join(options.dir, `${base}.log`);
    fd = openSync(path, "a", 0o644);
  } else {
    ({ path, fd } = createUniqueLog(options.dir, base));
  }
  const markers = [openMarker(options.dir, path.slice(options.dir.length + 1))];
  let debugFd: number | undefined;
  let debugPath: string | undefined;
  if (options.debugDir) {
    mkdirSync(options.debugDir, { recursive: true });
    debugPath = join(options.debugDir, `${logBaseName(options.prefix, "daily", now())}.log`);
    debugFd = openSync(debugPath, "a", 0o644);
    markers.push(openMarker(options.debugDir, debugPath.slice(options.debugDir.length + 1)));
  }
  let closed = false;
  const tag = `[${options.program} ${process.pid}]`;
  const write = (level: string, message: string, toMain: boolean) => {
    if (closed) return;
    const lines = message.split(/\r?\n/).map((l) => `${stamp(now())} ${level} ${tag} ${l}\n`)
      .join("");
    if (toMain) writeSync(fd, lines);
    if (debugFd !== undefined) writeSync(debugFd, lines);
    if (options.echo && toMain) process.stderr.write(lines);
  };
  return {
    path,
    debugPath,
    info: (m) => write("INFO ", m, true),
    warn: (m) => write("WARN ", m, true),
    error: (m) => write("ERROR", m, true),
    debug: (m) => write("DEBUG", m, false),
    raw: (prefix, text) => {
      const body = text.replace(/\r?\n$/, "");
      if (body !== "") {
        write(
          "INFO ",
          body.split(/\r?\n/).map((l) => `${prefix}${l}`).join("\n"),
          true,
        );
      }
    },
    close: () => {
      if (closed) return;
      closed = true;
      closeSync(fd);
      if (debugFd !== undefined) closeSync(debugFd);
      for (const m of markers) rmSync(m, { force: true });
    },
  };
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === "EPERM";
  }
}

/** Names of logs in `dir` that a live process still writes; removes markers of dead ones. */
export function openLogNames(dir: string): Set<string> {
  const open = new Set<string>();
  let entries: string[];
  try {
    entries = readdirSync(markerDir(dir));
  } catch {
    return open;
  }
  for (const e of entries) {
    const at = e.lastIndexOf("@");
    const pid = Number(e.slice(at + 1));
    if (at > 0 && Number.isInteger(pid) && pidAlive(pid)) open.add(e.slice(0, at));
    else rmSync(join(markerDir(dir), e), { force: true });
  }
  return open;
}

/** Log files cncop writes: an upper-case prefix, a dash, a date. */
const logNamePattern = /^[A-Z]{1,8}-\d{2,4}-\d{2}-\d{2}.*\.log$/;

/**
 * Removes log files in `dirs` last modified more than `days` days before `now`, except
 * logs a live process is still writing. Returns the paths removed.
 */
export function pruneLogs(dirs: string[], days: number, now: Date = new Date()): string[] {
  const cutoff = now.getTime() - days * 86_400_000;
  const removed: string[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    const open = openLogNames(dir);
    for (const name of names) {
      if (!logNamePattern.test(name) || open.has(name)) continue;
      const path = join(dir, name);
      try {
        if (statSync(path).mtimeMs < cutoff) {
          rmSync(path);
          removed.push(path);
        }
      } catch (err) {
        if (errnoCode(err) !== "ENOENT") throw err;
      }
    }
  }
  return removed;
}
