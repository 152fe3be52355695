/**
 * The cncopagent run: select jobs, run each, prune old logs, summarise.
 *
 * @module
 */
import { resolve } from "node:path";
import { appContext } from "../core/context.ts";
import { ExitCode, messageOf } from "../core/errors.ts";
import { pruneLogs } from "../core/log.ts";
import { cancelOnSignals, createCancellation } from "./cancel.ts";
import { parseRecipients } from "./mail.ts";
import { jobLabel, type JobOutcome, runJob, type RunTunables } from "./run_job.ts";
import { type Selection, selectJobs } from "./select.ts";

/** What the cncopagent command line asked for. */
export interface DispatchOptions {
  selection: Selection;
  debug?: boolean;
  /** `-c`: another cncop3.ini. */
  config?: string;
  /** `--email ADDR[,ADDR]`. */
  email?: string;
  /** The arguments as given, for the log. */
  argv?: string[];
}

function envMs(name: string, fallback: number): number {
  const v = process.env[name];
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : fallback;
}

/** The timings of a run: defaults, or the CNCOP_*_MS environment variables. */
export function tunablesFromEnv(): RunTunables {
  return {
    retryPauseMs: envMs("CNCOP_RETRY_PAUSE_MS", 10_000),
    graceMs: envMs("CNCOP_KILL_GRACE_MS", 10_000),
    reporterTimeoutMs: envMs("CNCOP_REPORTER_TIMEOUT_MS", 600_000),
  };
}

/** The summary line of a job, as stdout and the CA log show it. */
export function summaryLine(o: JobOutcome): string {
  const secs = Math.round((o.endedAt.getTime() - o.startedAt.getTime()) / 100) / 10;
  const detail = o.result === "SKIPPED"
    ? ""
    : `, ${o.attempts} attempt${o.attempts === 1 ? "" : "s"}, ${secs} s`;
  return `${jobLabel(o.job)}: ${o.result}${o.message ? ` - ${o.message}` : ""}${detail}`;
}

/**
 * Runs cncopagent; resolves to its exit status: 0 when every job ended OK (or was skipped as
 * already running), 1 when any ended in ERROR or was not started because of a cancel.
 *
 * @throws {UsageError} for a bad selection or `--email` without `[mail] mail_server`,
 *   before anything runs.
 */
export async function runDispatcher(o: DispatchOptions): Promise<number> {
  const config = o.config === undefined ? undefined : resolve(o.config);
  const ctx = appContext({ config, debug: o.debug });
  const mailTo = o.email === undefined ? undefined : parseRecipients(o.email, ctx.config);
  const db = ctx.openJobs();
  let jobs;
  try {
    jobs = selectJobs(db, o.selection);
  } finally {
    db.close();
  }
  const log = ctx.openLog("CA", "session", "cncopagent");
  const cancel = createCancellation();
  const untie = cancelOnSignals(cancel);
  const outcomes: JobOutcome[] = [];
  try {
    log.info(
      `cncopagent ${(o.argv ?? []).join(" ")}: ${jobs.length} job(s): ${
        jobs.map((j) => j.id).join(", ")
      }`,
    );
    if (jobs.length === 0) log.info("no job matches: nothing to run");
    const tunables = tunablesFromEnv();
    for (const job of jobs) {
      outcomes.push(
        await runJob(
          { ctx, common: { debug: o.debug, config }, log, cancel, tunables, mailTo },
          job,
        ),
      );
    }
    const removed = pruneLogs(
      [ctx.paths.logs, ctx.paths.spoolLogs],
      ctx.config.defaults.daysOfLogs,
    );
    log.info(
      `pruned ${removed.length} log(s) older than ${ctx.config.defaults.daysOfLogs} days`,
    );
    for (const r of removed) log.debug(`pruned ${r}`);
  } catch (err) {
    log.error(`cncopagent failed: ${messageOf(err)}`);
    if (err instanceof Error && err.stack) log.raw("", err.stack);
    throw err;
  } finally {
    untie();
    const lines = outcomes.map(summaryLine);
    log.info("summary:");
    for (const l of lines) log.info(`  ${l}`);
    log.close();
    for (const l of lines) process.stdout.write(`${l}\n`);
    process.stdout.write(`log: ${log.path}\n`);
  }
  const failed = outcomes.some((x) =>
    x.result === "ERROR" || (x.result === "SKIPPED" && cancel.cancelled)
  );
  return failed ? ExitCode.error : ExitCode.ok;
}
