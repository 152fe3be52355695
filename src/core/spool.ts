/**
 * Report files in `Spool/Messages/`: job exception (JE), job statistics (JS) and job finished
 * (JF). Agents and the dispatcher write them; cncopreporter sends them to the network in the
 * order JE, JS, JF and removes each only once the network acknowledged it.
 *
 * A file is `<KIND>-<YYYYMMDDTHHMMSSmmm>-<job id>-<pid>-<seq>.json`, written atomically, so
 * names sort by kind and then by time, and a reader never sees half a report.
 *
 * @module
 */
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "./atomic.ts";

/** The three kinds of report, in the order they are sent. */
export const reportKinds = ["JE", "JS", "JF"] as const;
/** A kind of report. */
export type ReportKind = (typeof reportKinds)[number];

/** A job result as every report, log, exit status and mail states it. */
export type JobResult = "OK" | "ERROR";

/** A report waiting in Spool/Messages. */
export interface Report {
  kind: ReportKind;
  /** Report format version. */
  format: 1;
  jobId: number;
  jobTitle: string;
  jobType: string;
  /** Identifies one run of a job (one dispatcher job session); ties JE/JS/JF together. */
  session: string;
  /** The program that wrote it. */
  program: string;
  /** ISO time it was written. */
  createdAt: string;
  /** JF: the job's result. */
  result?: JobResult;
  /** JE/JF: what went wrong, for people. */
  message?: string;
  /** JF: agent runs made (1 + re-runs). */
  attempts?: number;
  /** JF: start and end (ISO). */
  startedAt?: string;
  endedAt?: string;
  /** JS (and JF summaries): counts and sizes, by name. */
  stats?: Record<string, number>;
}

let seq = 0;

function timeTag(d: Date): string {
  return d.toISOString().replace(/[-:]/g, "").replace(".", "").replace("Z", "");
}

/**
 * Writes a report into `messagesDir` atomically; returns its path.
 *
 * @example
 * ```ts
 * writeReport(paths.messages, { kind: "JF", jobId: 7, ..., result: "OK" });
 * ```
 */
export function writeReport(
  messagesDir: string,
  report: Omit<Report, "format" | "createdAt"> & { createdAt?: string },
): string {
  const now = new Date();
  const full: Report = { format: 1, ...report, createdAt: report.createdAt ?? now.toISOString() };
  seq++;
  const name = `${report.kind}-${timeTag(now)}-${report.jobId}-${process.pid}-${
    String(seq).padStart(4, "0")
  }.json`;
  const path = join(messagesDir, name);
  writeFileAtomic(path, JSON.stringify(full) + "\n");
  return path;
}

/** Who a job's reports come from: everything but what differs per report. */
export type ReportSource = Pick<Report, "jobId" | "jobTitle" | "jobType" | "session" | "program">;

/**
 * A writer of one job session's reports, so each call names only what it reports.
 *
 * @example
 * ```ts
 * const report = jobReporter(paths.messages, { jobId: 7, ..., program: "cncopagent" });
 * report("JF", { result: "OK", attempts: 1 });
 * ```
 */
export function jobReporter(
  messagesDir: string,
  source: ReportSource,
): (kind: ReportKind, fields?: Partial<Omit<Report, "kind" | "format">>) => string {
  return (kind, fields = {}) => writeReport(messagesDir, { ...source, ...fields, kind });
}

/** A report file found in the spool. */
export interface SpooledReport {
  path: string;
  name: string;
  report: Report | undefined;
  /** Why `report` is undefined (unreadable or malformed file). */
  error?: string;
}

/** Reports in `messagesDir` in sending order: every JE, then JS, then JF, each oldest first. */
export function listReports(messagesDir: string): SpooledReport[] {
  let names: string[];
  try {
    names = readdirSync(messagesDir);
  } catch {
    return [];
  }
  const order = (n: string) => reportKinds.indexOf(n.slice(0, 2) as ReportKind);
  return names
    .filter((n) => /^(JE|JS|JF)-.*\.json$/.test(n))
    .sort((a, b) => order(a) - order(b) || a.localeCompare(b))
    .map((name) => {
      const path = join(messagesDir, name);
      try {
        return { path, name, report: JSON.parse(readFileSync(path, "utf8")) as Report };
      } catch (err) {
        return { path, name, report: undefined, error: String(err) };
      }
    });
}

/** Removes a report once the network has acknowledged it. */
export function removeReport(path: string): void {
  rmSync(path, { force: true });
}
