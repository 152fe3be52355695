/**
 * One job from start to its single JF report: job lock, prerun, agent (with re-runs),
 * post command, JF, reporter, mail.
 *
 * Whatever happens after the lock is taken (prerun refused or failed, agent crashed, retries
 * used up, cancelled), the job ends with exactly one JF report, and the result in it is the
 * result in the CA log, the summary, the exit status and the mail.
 *
 * @module
 */
import { randomUUID } from "node:crypto";
import { closeSync, openSync, readSync, realpathSync, statSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import type { AppContext } from "../core/context.ts";
import { LockedError, messageOf } from "../core/errors.ts";
import type { Job } from "../core/jobs_db.ts";
import { acquireLock, type HeldLock } from "../core/lock.ts";
import type { Logger } from "../core/log.ts";
import { jobReporter, listReports, writeReport } from "../core/spool.ts";
import { type AgentCommonArgs, findProgram } from "./agent_table.ts";
import type { Cancellation } from "./cancel.ts";
import { hookEnv, type HookKind, type HookResult, runHook, utf8Head } from "./hooks.ts";
import { sendJobMail } from "./mail.ts";
import { runAgent } from "./run_agent.ts";
import { describeOutcome, runChild } from "./run_child.ts";
import type { Launch } from "./self_exec.ts";

/** Timings and limits of a run; environment variables override them (for tests). */
export interface RunTunables {
  /** First pause before a re-run (CNCOP_RETRY_PAUSE_MS). */
  retryPauseMs: number;
  /** Between asking a child to stop and killing it (CNCOP_KILL_GRACE_MS). */
  graceMs: number;
  /** Time limit of one cncopreporter run (CNCOP_REPORTER_TIMEOUT_MS). */
  reporterTimeoutMs: number;
}

/** What one job run needs from the dispatcher. */
export interface JobRunContext {
  ctx: AppContext;
  common: AgentCommonArgs;
  log: Logger;
  cancel: Cancellation;
  tunables: RunTunables;
  /** `--email` recipients. */
  mailTo?: string[];
}

/** How a job ended. `SKIPPED` jobs were never started and have no report. */
export interface JobOutcome {
  job: Job;
  result: "OK" | "ERROR" | "SKIPPED";
  message?: string;
  attempts: number;
  session?: string;
  startedAt: Date;
  endedAt: Date;
  /** The JF report written (absent for skipped jobs). */
  reportPath?: string;
}

/** The dispatcher's own lock of a job: one cncopagent per job id at a time. */
export function dispatchLockPath(ctx: AppContext, jobId: number): string {
  return join(ctx.paths.work, `dispatch-job-${jobId}.lock`);
}

/** `job 7 "Docs" (CCS)` */
export function jobLabel(job: Job): string {
  return `job ${job.id} ${JSON.stringify(job.title)} (${job.type})`;
}

function logSize(log: Logger): number {
  try {
    return statSync(log.path).size;
  } catch {
    return 0;
  }
}

/** The lines the CA log got since byte `from`, at most the last `max`. */
function logTail(path: string, from: number, max: number): string[] {
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const size = statSync(path).size;
    const start = Math.max(from, size - 256 * 1024);
    const buf = Buffer.alloc(size - start);
    readSync(fd, buf, 0, buf.length, start);
    return buf.toString("utf8").split(/\r?\n/).filter((l) => l !== "").slice(-max);
  } catch {
    return [];
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Sums the counts of the JS reports the agents wrote for `session`. */
function sessionStats(messagesDir: string, session: string): Record<string, number> {
  const stats: Record<string, number> = {};
  for (const r of listReports(messagesDir)) {
    if (r.report?.kind !== "JS" || r.report.session !== session) continue;
    for (const [k, v] of Object.entries(r.report.stats ?? {})) {
      if (typeof v === "number") stats[k] = (stats[k] ?? 0) + v;
    }
  }
  return stats;
}

/** Runs cncopreporter once; its outcome never changes a job's result. */
export async function runReporter(jr: JobRunContext): Promise<void> {
  const { ctx, log, common } = jr;
  if (jr.cancel.cancelled) {
    log.info("cancelled: reports stay in Spool/Messages for the next cncopreporter run");
    return;
  }
  const args = [...(common.debug ? ["-d"] : []), ...(common.config ? ["-c", common.config] : [])];
  const launch = findProgram(ctx.paths.bin, "cncopreporter", args);
  if (!launch) {
    log.warn("no cncopreporter: reports stay in Spool/Messages");
    return;
  }
  log.info("cncopreporter: submitting the reports in Spool/Messages");
  if (isThisExecutable(launch)) return await reportInProcess(jr);
  const out = await runChild({
    launch,
    env: { CNCOP_HOME: ctx.paths.home },
    log,
    prefix: "[cncopreporter] ",
    timeoutMs: jr.tunables.reporterTimeoutMs,
    cancel: jr.cancel,
    cancellable: true,
    graceMs: jr.tunables.graceMs,
  });
  if (out.code === 0) log.info("cncopreporter: done");
  else {
    log.warn(
      `cncopreporter ${describeOutcome(out)}: undelivered reports stay in Spool/Messages ` +
        "for the next run",
    );
  }
}

/**
 * Whether `launch` would only start this very program again (the built-in reporter, or a
 * release's Bin/cncopreporter symlink to the executable): then it runs in this process,
 * which saves a process start per job. A different Bin/cncopreporter is started.
 */
function isThisExecutable(launch: Launch): boolean {
  if (launch.env.CNCOP_ARGV0 !== undefined) return true; // selfLaunch
  try {
    return realpathSync(launch.file) === realpathSync(process.execPath);
  } catch {
    return false;
  }
}

/** cncopreporter inside the dispatcher, with the same time limit and log lines. */
async function reportInProcess(jr: JobRunContext): Promise<void> {
  const { log } = jr;
  const { runReporter } = await import("../ccs/reporter.ts");
  let stop = () => {};
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve("timed out"), jr.tunables.reporterTimeoutMs);
    stop = jr.cancel.listen(() => resolve("cancelled"));
  });
  try {
    const r = await Promise.race([
      runReporter(jr.ctx).then((x) => x.code, (err) => `failed: ${messageOf(err)}`),
      limit,
    ]);
    if (r === 0) log.info("cncopreporter: done");
    else {
      log.warn(
        `cncopreporter ${typeof r === "number" ? `exit status ${r}` : r}: undelivered ` +
          "reports stay in Spool/Messages for the next run",
      );
    }
  } finally {
    clearTimeout(timer);
    stop();
  }
}

/**
 * Runs `job` to its end. Never throws for anything the job does; a job another cncopagent is
 * running is skipped (no report: that run files it).
 */
export async function runJob(jr: JobRunContext, job: Job): Promise<JobOutcome> {
  const { ctx, log, cancel } = jr;
  const startedAt = new Date();
  const label = jobLabel(job);
  if (cancel.cancelled) {
    return {
      job,
      result: "SKIPPED",
      message: "not started: cancelled",
      attempts: 0,
      startedAt,
      endedAt: startedAt,
    };
  }
  let lock: HeldLock;
  try {
    lock = await acquireLock(dispatchLockPath(ctx, job.id), { mode: "try", what: label });
  } catch (err) {
    if (!(err instanceof LockedError)) throw err;
    log.warn(`${label} is already running in another cncopagent: skipped`);
    return {
      job,
      result: "SKIPPED",
      message: "already running in another cncopagent",
      attempts: 0,
      startedAt,
      endedAt: new Date(),
    };
  }
  const session = randomUUID();
  const logFrom = logSize(log);
  let filed = false;
  try {
    log.info(`${label}: start, session ${session}`);
    if (!job.enabled) log.info(`${label} is disabled; running it because it was named`);
    const env = hookEnv(job, ctx.paths.home, session);
    const report = jobReporter(ctx.paths.messages, {
      jobId: job.id,
      jobTitle: job.title,
      jobType: job.type,
      session,
      program: "cncopagent",
    });
    const hook = (kind: HookKind, command: string, result?: string): Promise<HookResult> =>
      runHook({
        binDir: ctx.paths.bin,
        job,
        kind,
        command,
        env: result === undefined ? env : { ...env, CNCOP_JOB_RESULT: result },
        log,
        cancel,
        graceMs: jr.tunables.graceMs,
      });

    let result: "OK" | "ERROR" = "ERROR";
    let message: string | undefined;
    let attempts = 0;
    let prerunOk = true;
    if (job.prerun.trim() !== "") {
      const pre = await hook("prerun", job.prerun);
      if (pre.refused !== undefined) {
        message = `prerun refused: ${pre.refused}`;
        report("JE", { message });
        prerunOk = false;
      } else if (!pre.ok) {
        const how = describeOutcome(pre.outcome!);
        message = pre.outcome!.cancelled ? "cancelled" : `prerun failed (${how})`;
        if (!pre.outcome!.cancelled) {
          const stderr = utf8Head(pre.outcome!.stderrHead, 2048);
          report("JE", { message: stderr === "" ? message : stderr });
        }
        prerunOk = false;
      }
      if (!prerunOk) log.error(`${label}: ${message}; the job does not run`);
    }
    if (prerunOk) {
      const agent = await runAgent({
        binDir: ctx.paths.bin,
        job,
        common: jr.common,
        env,
        log,
        cancel,
        graceMs: jr.tunables.graceMs,
        retryPauseMs: jr.tunables.retryPauseMs,
        workDb: join(ctx.paths.work, "work.db"),
      });
      result = agent.result;
      message = agent.message;
      attempts = agent.attempts;
    }
    if (result === "OK" && !cancel.cancelled && job.postrunSuccess.trim() !== "") {
      const post = await hook("postrun-success", job.postrunSuccess, "OK");
      if (!post.ok && !cancel.cancelled) {
        const why = post.refused ?? describeOutcome(post.outcome!);
        log.error(`${label}: postrun-success failed (${why}); the backup itself succeeded`);
        report("JE", { message: `postrun-success failed: ${why}` });
      }
    }
    if (cancel.cancelled) {
      result = "ERROR";
      message = `cancelled (${cancel.reason})`;
    }
    if (result === "ERROR" && job.postrunFailure.trim() !== "") {
      const post = await hook("postrun-failure", job.postrunFailure, "ERROR");
      if (!post.ok) {
        const why = post.refused ?? describeOutcome(post.outcome!);
        log.error(`${label}: postrun-failure failed (${why})`);
        report("JE", { message: `postrun-failure failed: ${why}` });
      }
    }
    const endedAt = new Date();
    const stats = sessionStats(ctx.paths.messages, session);
    filed = true;
    const reportPath = report("JF", {
      result,
      message,
      attempts,
      startedAt: startedAt.toISOString(),
      endedAt: endedAt.toISOString(),
      stats,
    });
    log.info(`${label}: finished ${result}${message ? ` - ${message}` : ""}; attempts ${attempts}`);
    lock.release();
    await runReporter(jr);
    if (jr.mailTo) {
      try {
        await sendJobMail(ctx.config, jr.mailTo, {
          jobId: job.id,
          jobTitle: job.title,
          jobType: job.type,
          result,
          message,
          session,
          startedAt,
          endedAt,
          attempts,
          stats,
          logTail: logTail(log.path, logFrom, 40),
          logPath: log.path,
          host: hostname(),
        });
        log.info(`${label}: mail sent to ${jr.mailTo.join(", ")}`);
      } catch (err) {
        log.error(`${label}: mail to ${jr.mailTo.join(", ")} failed: ${messageOf(err)}`);
      }
    }
    return { job, result, message, attempts, session, startedAt, endedAt, reportPath };
  } catch (err) {
    // One report per started job, even when the dispatcher itself failed during it.
    const message = `internal error: ${messageOf(err)}`;
    log.error(`${label}: ${message}`);
    if (err instanceof Error && err.stack) log.debug(err.stack);
    const endedAt = new Date();
    let reportPath: string | undefined;
    if (!filed) {
      try {
        reportPath = writeReport(ctx.paths.messages, {
          kind: "JF",
          jobId: job.id,
          jobTitle: job.title,
          jobType: job.type,
          session,
          program: "cncopagent",
          result: "ERROR",
          message,
          attempts: 0,
          startedAt: startedAt.toISOString(),
          endedAt: endedAt.toISOString(),
        });
      } catch (again) {
        log.error(`${label}: cannot write its JF report: ${messageOf(again)}`);
      }
    }
    return { job, result: "ERROR", message, attempts: 0, session, startedAt, endedAt, reportPath };
  } finally {
    lock.release();
  }
}
