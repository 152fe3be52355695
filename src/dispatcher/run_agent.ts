/**
 * Running a job's agent under the agent contract, with re-runs.
 *
 * Exit status 0 is OK, 1 ERROR, 75 RE-RUN; anything else, a signal or a failure to start is
 * a catastrophic failure (no re-run; the stderr tail goes into the CA log). CCS starts the
 * enqueuer, and the dequeuer as soon as a pack of the job session is ready (so it uploads
 * while the enqueuer packs; a run with nothing to send never starts it); the attempt's
 * verdict combines both: catastrophic if either crashed, else RE-RUN if either asks for it,
 * else ERROR if either failed, else OK.
 *
 * @module
 */
import { ExitCode } from "../core/errors.ts";
import type { Job } from "../core/jobs_db.ts";
import type { Logger } from "../core/log.ts";
import type { AgentCommonArgs } from "./agent_table.ts";
import { planAgent } from "./agent_table.ts";
import { cancellableSleep, type Cancellation } from "./cancel.ts";
import { type ChildOutcome, describeOutcome, runChild } from "./run_child.ts";
import type { Launch } from "./self_exec.ts";
import { SessionWork } from "./ccs_work.ts";

/** The verdict of one agent attempt. */
export type AttemptVerdict = "OK" | "ERROR" | "RERUN" | "CRASH" | "CANCELLED";

/** The verdict on how one agent program ended. */
export function verdictOf(o: ChildOutcome): AttemptVerdict {
  if (o.cancelled) return "CANCELLED";
  if (o.spawnError !== undefined || o.signal !== null || o.timedOut) return "CRASH";
  if (o.code === ExitCode.ok) return "OK";
  if (o.code === ExitCode.error) return "ERROR";
  if (o.code === ExitCode.rerun) return "RERUN";
  return "CRASH";
}

/** Combines the verdicts of programs run together (CCS nq + dq). */
export function combineVerdicts(verdicts: AttemptVerdict[]): AttemptVerdict {
  for (const v of ["CANCELLED", "CRASH", "RERUN", "ERROR"] as const) {
    if (verdicts.includes(v)) return v;
  }
  return "OK";
}

/** How the agent part of a job ended. */
export interface AgentRunResult {
  result: "OK" | "ERROR";
  /** Agent runs made: 1 + re-runs (0 when no agent could be started). */
  attempts: number;
  cancelled: boolean;
  /** Why it is ERROR, for people. */
  message?: string;
}

/** Options of {@link runAgent}. */
export interface RunAgentOptions {
  binDir: string;
  job: Job;
  common: AgentCommonArgs;
  env: Record<string, string>;
  log: Logger;
  cancel: Cancellation;
  graceMs: number;
  /** First pause before a re-run; each later pause doubles, up to 5 minutes. */
  retryPauseMs: number;
  /** The CCS work database (Spool/Work/work.db): when to start an on-demand program. */
  workDb: string;
}

/** How often the dispatcher looks for ready packs while the enqueuer runs. */
const POLL_MS = 20;

/** The pause before re-run number `n` (1-based). */
export function retryPause(baseMs: number, n: number): number {
  return Math.min(baseMs * 2 ** (n - 1), 300_000);
}

/**
 * Runs `job`'s agent until it ends OK or ERROR, re-running on RE-RUN up to the job's
 * max retries. Never throws.
 */
export async function runAgent(o: RunAgentOptions): Promise<AgentRunResult> {
  const plan = planAgent(o.binDir, o.job, o.common);
  if (!plan.ok) {
    o.log.error(plan.message);
    return { result: "ERROR", attempts: 0, cancelled: false, message: plan.message };
  }
  const maxAttempts = 1 + o.job.maxRetries;
  for (let attempt = 1;; attempt++) {
    o.log.info(`attempt ${attempt} of at most ${maxAttempts}`);
    for (const { launch } of plan.launches) {
      o.log.info(`  ${[launch.file, ...launch.args].join(" ")}`);
    }
    const start = (name: string, launch: Launch, env = o.env) =>
      runChild({
        launch,
        env,
        log: o.log,
        prefix: `[${name}] `,
        cancel: o.cancel,
        cancellable: true,
        graceMs: o.graceMs,
      }).then((outcome) => ({ name, outcome }));
    const main = Promise.all(plan.launches.map(({ name, launch }) => start(name, launch)));
    const extra = plan.onDemand ? onDemand(o, plan.onDemand, main, start) : [];
    const outcomes = [...await main, ...await extra];
    const verdicts = outcomes.map(({ name, outcome }) => {
      const v = verdictOf(outcome);
      o.log.info(`${name} ended: ${describeOutcome(outcome)} -> ${v}`);
      if (v === "CRASH") {
        o.log.error(`${name} failed catastrophically (${describeOutcome(outcome)})`);
        if (outcome.stderrTail.trim() !== "") o.log.raw(`[${name} stderr] `, outcome.stderrTail);
      }
      return v;
    });
    const verdict = combineVerdicts(verdicts);
    if (verdict === "OK") return { result: "OK", attempts: attempt, cancelled: false };
    if (verdict === "CANCELLED" || o.cancel.cancelled) {
      return { result: "ERROR", attempts: attempt, cancelled: true, message: "cancelled" };
    }
    if (verdict === "ERROR") {
      return {
        result: "ERROR",
        attempts: attempt,
        cancelled: false,
        message: `the agent ended with ERROR (attempt ${attempt})`,
      };
    }
    if (verdict === "CRASH") {
      const detail = outcomes.filter(({ outcome }) => verdictOf(outcome) === "CRASH").map((
        { name, outcome },
      ) => {
        const last = outcome.stderrTail.trim().split(/\r?\n/).pop();
        return `${name} ${describeOutcome(outcome)}${last ? `: ${last}` : ""}`;
      }).join("; ");
      return {
        result: "ERROR",
        attempts: attempt,
        cancelled: false,
        message: `the agent failed catastrophically: ${detail}`,
      };
    }
    if (attempt >= maxAttempts) {
      const message = `the agent still asked for a re-run after ${attempt} attempts ` +
        `(max retries ${o.job.maxRetries})`;
      o.log.error(message);
      return { result: "ERROR", attempts: attempt, cancelled: false, message };
    }
    const pause = retryPause(o.retryPauseMs, attempt);
    o.log.info(`the agent asked for a re-run; next attempt in ${pause / 1000} s`);
    await cancellableSleep(pause, o.cancel);
    if (o.cancel.cancelled) {
      return { result: "ERROR", attempts: attempt, cancelled: true, message: "cancelled" };
    }
  }
}

type Started = Promise<{ name: string; outcome: ChildOutcome }>;

/**
 * Runs the on-demand program (the CCS dequeuer) of one attempt while `main` (the enqueuer)
 * runs: started when the enqueuer starts a full peek (it found a change) or a pack of this
 * job session is ready, and once more after the enqueuer
 * ended if packs are still ready and it had not started or ended OK before the enqueuer did
 * (it may have sent an earlier attempt's packs before this enqueuer made its own). It
 * gets CNCOP_DQ_GRACE_MS=0: the dispatcher does the waiting for the enqueuer, so a
 * dequeuer started late must not wait for one to appear.
 */
async function onDemand(
  o: RunAgentOptions,
  od: { name: string; launch: Launch },
  main: Promise<unknown>,
  start: (name: string, launch: Launch, env: Record<string, string>) => Started,
): Promise<{ name: string; outcome: ChildOutcome }[]> {
  const session = o.env.CNCOP_JOB_SESSION ?? "";
  const work = new SessionWork(o.workDb, o.job.id, session);
  const env = { ...o.env, CNCOP_DQ_GRACE_MS: "0" };
  const done: { name: string; outcome: ChildOutcome }[] = [];
  let running: Started | undefined;
  let mainEnded = false;
  // A dequeuer that ended before the enqueuer did may have missed its last packs.
  let endedEarly = false;
  void main.finally(() => mainEnded = true);
  const failed = () => done.some((d) => verdictOf(d.outcome) !== "OK");
  try {
    while (!mainEnded) {
      const why = done.length > 0 || running || o.cancel.cancelled
        ? undefined
        : work.hasReady()
        ? "packs are ready"
        : work.peeking()
        ? "the enqueuer found changes"
        : undefined;
      if (why) {
        o.log.info(`${od.name}: ${why}: starting it`);
        running = start(od.name, od.launch, env);
        void running.then((r) => {
          done.push(r);
          running = undefined;
          endedEarly = !mainEnded;
        });
      }
      await Promise.race([main, new Promise((r) => setTimeout(r, POLL_MS))]);
    }
    // Let a running dequeuer finish (its result is recorded by the handler above).
    while (running) await running;
    if ((done.length === 0 || endedEarly) && !failed() && !o.cancel.cancelled && work.hasReady()) {
      o.log.info(`${od.name}: packs are still ready: starting it`);
      done.push(await start(od.name, od.launch, env));
    }
    if (done.length === 0) o.log.info(`${od.name}: nothing to send; not started`);
    return done;
  } finally {
    work.close();
  }
}
