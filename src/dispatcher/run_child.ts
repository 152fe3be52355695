/**
 * Running one child process for the dispatcher: its output goes line by line into the CA
 * log, it can be timed out and cancelled (asked to stop, then killed after a grace period),
 * and what it wrote to stderr is kept (the head for job exceptions, the tail for crashes).
 *
 * On POSIX the child leads its own process group and signals go to the whole group, so a
 * shell script's children stop with it.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import type { Logger } from "../core/log.ts";
import { messageOf } from "../core/errors.ts";
import type { Cancellation } from "./cancel.ts";
import type { Launch } from "./self_exec.ts";

/** Options of {@link runChild}. */
export interface RunChildOptions {
  launch: Launch;
  /** Environment added to the dispatcher's own. */
  env?: Record<string, string>;
  log: Logger;
  /** Prefix of the child's lines in the log, e.g. `[rsyncagent] `. */
  prefix: string;
  /** Kill the child after this many milliseconds. */
  timeoutMs?: number;
  /** The run's cancellation. */
  cancel: Cancellation;
  /** false: only a forcing (second) signal stops this child, e.g. the post-failure command. */
  cancellable: boolean;
  /** Milliseconds between asking the child to stop and killing it. */
  graceMs: number;
  /** Bytes of stderr to keep from its start. @default 2048 */
  stderrHeadBytes?: number;
}

/** How a child ended. */
export interface ChildOutcome {
  /** Exit status, or null when killed by a signal or never started. */
  code: number | null;
  signal: string | null;
  /** Set when the program could not be started (ENOENT, EACCES, ...). */
  spawnError?: string;
  timedOut: boolean;
  cancelled: boolean;
  /** The first `stderrHeadBytes` bytes of stderr. */
  stderrHead: Buffer;
  /** The last lines of stderr (at most 4 KiB). */
  stderrTail: string;
}

const tailLimit = 4096;

/** Splits a stream into lines for the log; flush() writes a last partial line. */
function lineSink(log: Logger, prefix: string) {
  let pending = "";
  return {
    write(chunk: string) {
      pending += chunk;
      const cut = pending.lastIndexOf("\n");
      if (cut < 0) return;
      log.raw(prefix, pending.slice(0, cut + 1));
      pending = pending.slice(cut + 1);
    },
    flush() {
      if (pending !== "") log.raw(prefix, pending);
      pending = "";
    },
  };
}

function signalTree(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    if (process.platform !== "win32") process.kill(-child.pid, signal);
    else child.kill(signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/**
 * Runs a child to its end. Never throws: a failure to start is an outcome too.
 *
 * @example
 * ```ts
 * const out = await runChild({ launch, log, prefix: "[prep] ", cancel, cancellable: true,
 *   graceMs: 10_000 });
 * ```
 */
export function runChild(options: RunChildOptions): Promise<ChildOutcome> {
  const headLimit = options.stderrHeadBytes ?? 2048;
  const base: ChildOutcome = {
    code: null,
    signal: null,
    timedOut: false,
    cancelled: false,
    stderrHead: Buffer.alloc(0),
    stderrTail: "",
  };
  if (options.cancellable && options.cancel.cancelled) {
    return Promise.resolve({ ...base, cancelled: true });
  }
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(options.launch.file, options.launch.args, {
        env: { ...process.env, ...options.launch.env, ...options.env },
        stdio: ["ignore", "pipe", "pipe"],
        detached: process.platform !== "win32",
        windowsHide: true,
      });
    } catch (err) {
      resolve({ ...base, spawnError: messageOf(err) });
      return;
    }
    const out = { ...base };
    const headParts: Buffer[] = [];
    let headSize = 0;
    const stdoutSink = lineSink(options.log, options.prefix);
    const stderrSink = lineSink(options.log, options.prefix);
    child.stdout!.on("data", (d: Buffer) => stdoutSink.write(d.toString("utf8")));
    child.stderr!.on("data", (d: Buffer) => {
      if (headSize < headLimit) {
        const part = d.subarray(0, headLimit - headSize);
        headParts.push(part);
        headSize += part.length;
      }
      const text = d.toString("utf8");
      out.stderrTail = (out.stderrTail + text).slice(-tailLimit);
      stderrSink.write(text);
    });

    let killTimer: ReturnType<typeof setTimeout> | undefined;
    const stop = (force: boolean) => {
      if (force) {
        signalTree(child, "SIGKILL");
        return;
      }
      signalTree(child, "SIGTERM");
      killTimer ??= setTimeout(() => signalTree(child, "SIGKILL"), options.graceMs);
    };
    const unlisten = options.cancel.listen((event) => {
      if (event === "cancel" && !options.cancellable) return;
      out.cancelled = true;
      stop(event === "force");
    });
    const timeout = options.timeoutMs === undefined ? undefined : setTimeout(() => {
      out.timedOut = true;
      options.log.warn(`${options.prefix}time limit of ${options.timeoutMs! / 1000} s reached`);
      stop(false);
    }, options.timeoutMs);

    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      unlisten();
      if (timeout) clearTimeout(timeout);
      if (killTimer) clearTimeout(killTimer);
      stdoutSink.flush();
      stderrSink.flush();
      out.stderrHead = Buffer.concat(headParts);
      resolve(out);
    };
    child.on("error", (err) => {
      out.spawnError = messageOf(err);
      finish();
    });
    child.on("exit", (code, signal) => {
      out.code = code;
      out.signal = signal;
      // A grandchild may keep the pipes open: wait for them briefly, then stop reading.
      const cap = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        finish();
      }, 1000);
      child.on("close", () => {
        clearTimeout(cap);
        finish();
      });
    });
  });
}

/** Describes how a child ended, for logs and reports: `exit status 3`, `killed by SIGSEGV`. */
export function describeOutcome(o: ChildOutcome): string {
  if (o.spawnError !== undefined) return `could not start: ${o.spawnError}`;
  const how = o.signal ? `killed by ${o.signal}` : `exit status ${o.code}`;
  if (o.timedOut) return `timed out (${how})`;
  if (o.cancelled) return `cancelled (${how})`;
  return how;
}
