/**
 * cncopreporter: store and forward of `Spool/Messages` to the network, JE then JS then JF,
 * each oldest first. A report is removed only after the network acknowledged it (the
 * network stores a report id once, so a report sent twice after a crash is stored once). A
 * report the network refuses, or cannot take yet, stays and is retried by later runs for up
 * to 5 days; then it is removed with a log line.
 *
 * @module
 */
import { statSync } from "node:fs";
import type { AppContext } from "../core/context.ts";
import { ExitCode, messageOf, TransientError } from "../core/errors.ts";
import { listReports, removeReport } from "../core/spool.ts";
import type { NetworkClient } from "../network/client.ts";
import { agentClient } from "./cloud.ts";

/** How long an undeliverable report is kept. */
export const REPORT_MAX_AGE_MS = 5 * 24 * 3600 * 1000;

/** What a reporter run did. */
export interface ReporterStats {
  sent: number;
  kept: number;
  dropped: number;
}

function ageMs(path: string, createdAt: string | undefined, now: number): number {
  const t = createdAt ? Date.parse(createdAt) : NaN;
  if (Number.isFinite(t)) return now - t;
  try {
    return now - statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

/**
 * Sends the spooled reports. Returns 0 when every report was delivered or dealt with, 75
 * when the network could not be reached (the reports stay), 1 when one was refused.
 */
export async function runReporter(
  ctx: AppContext,
  options: { now?: () => number; client?: NetworkClient } = {},
): Promise<{ code: number; stats: ReporterStats }> {
  const now = options.now ?? Date.now;
  const log = ctx.openLog("RP", "daily", "cncopreporter");
  const stats: ReporterStats = { sent: 0, kept: 0, dropped: 0 };
  let client = options.client;
  let code: number = ExitCode.ok;
  try {
    const reports = listReports(ctx.paths.messages);
    if (reports.length === 0) return { code, stats };
    log.info(`${reports.length} report(s) in ${ctx.paths.messages}`);
    for (let i = 0; i < reports.length; i++) {
      const r = reports[i]!;
      const age = ageMs(r.path, r.report?.createdAt, now());
      const expire = (why: string) => {
        if (age > REPORT_MAX_AGE_MS) {
          removeReport(r.path);
          stats.dropped++;
          log.warn(`DROPPED ${r.name}: ${why}; undeliverable for more than 5 days`);
        } else {
          stats.kept++;
          log.warn(`KEPT ${r.name}: ${why}; retried on the next run`);
        }
      };
      if (!r.report) {
        expire(`unreadable (${r.error ?? "malformed"})`);
        continue;
      }
      try {
        client ??= agentClient(ctx.config);
        const id = r.name.replace(/\.json$/, "");
        await client.sendReport(
          String(r.report.jobId),
          r.report.kind,
          r.report as unknown as Record<string, unknown>,
          id,
        );
        removeReport(r.path);
        stats.sent++;
        log.info(`SENT ${r.name}`);
      } catch (err) {
        if (err instanceof TransientError) {
          const left = reports.length - i;
          stats.kept += left;
          for (const later of reports.slice(i)) {
            const a = ageMs(later.path, later.report?.createdAt, now());
            if (a > REPORT_MAX_AGE_MS) {
              removeReport(later.path);
              stats.kept--;
              stats.dropped++;
              log.warn(`DROPPED ${later.name}: undeliverable for more than 5 days`);
            }
          }
          log.warn(`network unreachable: ${err.message}; ${stats.kept} report(s) wait`);
          code = ExitCode.rerun;
          break;
        }
        expire(`refused: ${messageOf(err)}`);
        if (code === ExitCode.ok) code = ExitCode.error;
      }
    }
    log.info(`end: ${stats.sent} sent, ${stats.kept} kept, ${stats.dropped} dropped`);
    return { code, stats };
  } finally {
    if (!options.client) client?.close();
    log.close();
  }
}
