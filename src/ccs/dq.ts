/**
 * backupagentdq: the CCS dequeuer. Uploads the ready packs of Spool/Work to the network,
 * oldest first, lowest stage first, round-robin one chunk at a time over up to `maxBacklog`
 * packs in flight, then records the batch (file cache, signature cache, removal of the
 * packs) in one transaction. A pack is removed only after the network said it applied it.
 *
 * When does it stop? See {@link enqueuerActive} and docs/ccs.md.
 *
 * @module
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { AppContext } from "../core/context.ts";
import { CncopError, ExitCode, LockedError, messageOf, TransientError } from "../core/errors.ts";
import type { Job } from "../core/jobs_db.ts";
import { acquireLock, jobLockPath } from "../core/lock.ts";
import type { Logger } from "../core/log.ts";
import { writeReport } from "../core/spool.ts";
import { native } from "../native/mod.ts";
import type { NetworkClient, PackResult } from "../network/client.ts";
import { agentClient, beginUpload, type ChunkedUpload, sendChunk } from "./cloud.ts";
import { foldChained } from "./cloud_fold.ts";
import { selectCcsJobs, sessionOf } from "./nq.ts";
import { storeSignature } from "./signature_cache.ts";
import {
  type CachedFile,
  openWorkDb,
  pidAlive,
  processStart,
  type WorkDb,
  type WorkItem,
} from "./work_queue.ts";
import { releaseMemory } from "../core/memory.ts";

/** Options of {@link runDq}. */
export interface DqOptions {
  /** Bytes per upload request. @default 10 MB */
  chunkSize?: number;
  /** Packs in flight before results are recorded. @default 150 */
  maxBacklog?: number;
  /** Uploads running at once. @default 4 */
  lanes?: number;
  /** Dispatcher job session (CNCOP_JOB_SESSION); without one, dq sends what is ready. */
  session?: string;
  /** How long to wait for the enqueuer of the session to show up. @default 30000 */
  graceMs?: number;
}

/** Largest chunk the network takes by default. */
const MAX_CHUNK = 16 * 1024 * 1024;

/** Parses `--chunksize`: bytes, or with a K/M/G suffix (`10M`, `10MB`, `512k`). */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kKmMgG]?)([iI]?[bB])?$/.exec(s.trim());
  if (!m) throw new CncopError(`--chunksize must be a size like 10M, not ${JSON.stringify(s)}`);
  const mult = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase()]!;
  return Math.max(1, Math.round(Number(m[1]) * mult));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** How often a dequeuer with nothing to send looks again while an enqueuer produces. */
const POLL_MS = 20;

/**
 * Whether an enqueuer may still produce work for `job`:
 * - a backupagentnq holds the job lock (whatever the session), or
 * - with a session: the enqueuer run of this session and job (same parent, started within
 *   5 s of this dequeuer) is running and alive, or has not shown up yet and this dequeuer
 *   started less than `graceMs` ago.
 */
export async function enqueuerActive(
  ctx: AppContext,
  work: WorkDb,
  job: number,
  session: string | undefined,
  startedAt: number,
  graceMs: number,
): Promise<boolean> {
  try {
    const l = await acquireLock(jobLockPath(ctx.paths, job), { mode: "try", what: `job ${job}` });
    l.release();
  } catch (err) {
    if (err instanceof LockedError) return true;
    throw err;
  }
  if (!session) return false;
  const row = work.run(session, job);
  const mine = row !== undefined && row.ppid === process.ppid &&
    Math.abs(row.proc_start - processStart()) <= 5000;
  if (mine) return row.state === "running" && pidAlive(row.pid);
  return Date.now() - startedAt < graceMs;
}

/** One pack on its way, with the items it carries. */
interface Flight {
  pack: string;
  items: WorkItem[];
  upload?: ChunkedUpload;
  result?: PackResult;
  error?: string;
}

/** Counts of a dequeuer run. */
export interface DqStats {
  /** Packs applied. */
  uploaded: number;
  /** Items (files, moves, deletes) those packs carried. */
  items: number;
  sentBytes: number;
  resumed: number;
  rejected: number;
}

/** What {@link sendBatch} asks of its caller while it sends. */
interface BatchHooks {
  /**
   * Items of more ready packs, claimed for this dequeuer, for at most `room` packs (none
   * when nothing is ready): a lane that runs out takes them at once, rather than waiting for
   * the slowest pack of the batch.
   */
  refill(room: number): WorkItem[];
  /** Records a pack that ended, applied or rejected, as soon as it did. */
  ended(f: Flight, applied: boolean): void;
}

/** What {@link sendBatch} did. */
interface SendResult {
  /** Packs the network rejected, and why the first was. */
  rejected: number;
  firstRejection?: string;
  /** After a transient error: the claimed items not sent (the caller gives them back). */
  unsent: WorkItem[];
  transient?: TransientError;
}

/** The flights of `items`, one a pack. */
function flightsOf(items: WorkItem[]): Flight[] {
  const byPack = new Map<string, Flight>();
  for (const item of items) {
    const f = byPack.get(item.pack!) ?? { pack: item.pack!, items: [] };
    f.items.push(item);
    byPack.set(item.pack!, f);
  }
  return [...byPack.values()];
}

/**
 * Sends the packs of `batch`, and those `hooks.refill` adds, over `lanes` connections, a
 * chunk at a time round-robin, at most `backlog` packs under way; each pack is recorded
 * (`hooks.ended`) when it ends. Returns once nothing is left and nothing more is ready, or
 * at the first transient error (what was not sent stays claimed: the caller gives it back).
 */
async function sendBatch(
  client: NetworkClient,
  jobKey: string,
  batch: WorkItem[],
  o: { chunkSize: number; lanes: number; backlog: number },
  stats: DqStats,
  hooks: BatchHooks,
): Promise<SendResult> {
  const queue: Flight[] = flightsOf(batch);
  // Counts, not the flights: a run may stream a million items through here.
  const r: SendResult = { rejected: 0, unsent: [] };
  let transient: TransientError | undefined;
  // A pack the network applied but that could not be recorded: fatal, as it always was,
  // and no lane goes on sending then.
  let fatal: { err: unknown } | undefined;
  let sending = 0;
  const end = (f: Flight, applied: boolean) => {
    if (!applied && r.rejected++ === 0) r.firstRejection = f.error;
    try {
      hooks.ended(f, applied);
    } catch (err) {
      fatal ??= { err };
    }
  };
  const lane = async () => {
    while (!transient && !fatal) {
      const f = queue.shift();
      if (!f) {
        const more = flightsOf(hooks.refill(o.backlog - sending));
        if (more.length > 0) {
          queue.push(...more);
          continue;
        }
        // Nothing ready: wait while another lane still sends (its pack may be the one a
        // later stage waits for), else hand back to the caller, which knows when to stop.
        if (sending === 0) return;
        await sleep(POLL_MS);
        continue;
      }
      let ended: boolean | undefined;
      sending++;
      try {
        if (!f.upload) {
          f.upload = await beginUpload(client, jobKey, f.pack);
          if (f.upload.resumedFrom > 0) stats.resumed++;
        }
        await sendChunk(client, f.upload, o.chunkSize);
        if (f.upload.state === "applied") {
          f.result = f.upload.result;
          stats.sentBytes += f.upload.sent;
          ended = true;
        } else queue.push(f); // round-robin: the next pack gets the next chunk
      } catch (err) {
        if (err instanceof TransientError) {
          transient ??= err;
          queue.push(f);
        } else {
          f.error = messageOf(err);
          ended = false;
        }
      } finally {
        sending--;
      }
      if (ended !== undefined) end(f, ended);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.lanes) }, lane));
  if (fatal) throw fatal.err;
  // Once a transient error stopped the lanes, every pack not ended is back in the queue.
  if (transient) r.unsent = queue.flatMap((f) => f.items);
  r.transient = transient;
  return r;
}

/** The version each item of an applied pack got, from the entries' results. */
function versionsOf(f: Flight): Map<number, number | null> {
  const byKey = new Map<string, number | undefined>();
  for (const e of f.result?.entries ?? (f.result ? [f.result] : [])) {
    byKey.set(`${e.kind}:${e.path}`, e.version);
  }
  return new Map(
    f.items.map((i) => [i.id, byKey.get(`${i.kind.toLowerCase()}:${i.path}`) ?? null]),
  );
}

/**
 * Records a pack that ended, in one transaction: for an applied one the file cache, the
 * removal of its items and its fold into the saved cloud listing; for a rejected one its
 * items' failure. Its pack file goes after the commit. `unfolded` holds applied packs that
 * did not chain from the saved listing's tag yet (one applied before them has not answered
 * yet): they are folded with this one when they can be, and what still cannot is returned.
 */
function recordFlight(
  work: WorkDb,
  workDir: string,
  job: number,
  f: Flight,
  applied: boolean,
  unfolded: Flight[],
  log: Logger,
): Flight[] {
  const left = work.tx(() => {
    if (!applied) {
      for (const item of f.items) work.fail(item.id, f.error ?? "rejected");
      work.invalidatePeekState(job);
      return unfolded;
    }
    const versions = versionsOf(f);
    // File-cache rows of uploads go many to a statement, written before a move or delete.
    let puts: CachedFile[] = [];
    for (const item of f.items) {
      if (item.kind === "ADD" || item.kind === "UPDATE") {
        puts.push({
          path: item.path,
          size: item.size,
          mtimeNs: item.mtimeNs,
          ino: item.ino,
          dev: item.dev,
          hash: item.hash,
          version: versions.get(item.id) ?? null,
        });
        continue;
      }
      work.putCached(job, puts);
      puts = [];
      if (item.kind === "MOVE") work.moveCached(job, item.path, item.newPath!, item.folder);
      else work.dropCached(job, item.path);
    }
    work.putCached(job, puts);
    work.removeClaimedPack(job, f.pack, process.pid, f.items.length);
    return foldChained(work, job, [...unfolded, f]);
  });
  for (const item of f.items) {
    if (applied) {
      if (item.sig) storeSignature(workDir, item.sig, item.hash);
      log.debug(`SENT ${item.kind} ${item.path}${item.newPath ? ` -> ${item.newPath}` : ""}`);
    } else {
      log.error(`REJECTED ${item.kind} ${item.path}: ${f.error}`);
      if (item.sig) rmSync(item.sig, { force: true });
    }
  }
  rmSync(f.pack, { force: true });
  return left;
}

/**
 * Forgets the saved listing's tag when applied packs are left that never chained from it
 * (the next peek reads the whole listing then): none of this run's is still under way.
 */
function forgetUnfolded(work: WorkDb, job: number, unfolded: Flight[]): void {
  if (unfolded.length > 0) work.tx(() => work.setCloudTag(job, null));
}

/**
 * Runs the dequeuer for `refs` (every job with work when empty). Returns 0 OK, 1 ERROR (a
 * pack was rejected), 75 RE-RUN (the network could not be reached; nothing is lost).
 */
export async function runDq(ctx: AppContext, refs: string[], o: DqOptions): Promise<number> {
  const startedAt = Date.now();
  const log = ctx.openLog("DQ", "daily", "backupagentdq");
  const work = openWorkDb(join(ctx.paths.work, "work.db"));
  const session = o.session;
  let client: NetworkClient | undefined;
  try {
    let jobs: Job[];
    if (refs.length) jobs = selectCcsJobs(ctx, refs);
    else {
      const all = new Map(selectCcsJobs(ctx, []).map((j) => [j.id, j]));
      jobs = work.jobsWithWork().map((id) => all.get(id)).filter((j): j is Job => !!j);
    }
    const chunk = Math.min(MAX_CHUNK, o.chunkSize ?? 10 * 1000 * 1000);
    const backlog = Math.max(1, o.maxBacklog ?? 150);
    const lanes = o.lanes ?? 4;
    const grace = o.graceMs ?? Number(process.env.CNCOP_DQ_GRACE_MS ?? 30_000);
    log.info(`start: ${jobs.length} job(s), chunks of ${chunk} bytes, backlog ${backlog}`);
    let worst: number = ExitCode.ok;
    for (const job of jobs) {
      const jobKey = String(job.id);
      const stats: DqStats = { uploaded: 0, items: 0, sentBytes: 0, resumed: 0, rejected: 0 };
      const t0 = Date.now();
      let code: number = ExitCode.ok;
      let message: string | undefined;
      for (;;) {
        const batch = work.claim(job.id, process.pid, backlog);
        if (batch.length === 0) {
          if (await enqueuerActive(ctx, work, job.id, session, startedAt, grace)) {
            await sleep(POLL_MS);
            continue;
          }
          // The enqueuer is done: finish what became ready meanwhile, then stop.
          if (work.packCounts(job.id).ready === 0) break;
          const again = work.claim(job.id, process.pid, backlog);
          if (again.length === 0) {
            if (work.packCounts(job.id).sending > 0) {
              await sleep(POLL_MS);
              continue;
            }
            break; // blocked behind unpacked leftovers: the next enqueuer plans them again
          }
          batch.push(...again);
        }
        client ??= agentClient(ctx.config);
        let unfolded: Flight[] = [];
        const r = await sendBatch(
          client,
          jobKey,
          batch,
          { chunkSize: chunk, lanes, backlog },
          stats,
          {
            refill: (room) => {
              if (room <= 0 || !work.hasReady(job.id)) return [];
              return work.claim(job.id, process.pid, room);
            },
            ended: (f, applied) => {
              unfolded = recordFlight(work, ctx.paths.work, job.id, f, applied, unfolded, log);
              if (applied) {
                stats.uploaded++;
                stats.items += f.items.length;
              } else stats.rejected += f.items.length;
              releaseMemory(native); // the pack's buffers are free now: give them back
              if (process.stderr.isTTY) {
                process.stderr.write(
                  `\rjob ${job.id}: ${stats.items} item(s) in ${stats.uploaded} pack(s) applied, ${
                    (stats.sentBytes / 1e6).toFixed(1)
                  } MB sent`,
                );
              }
            },
          },
        );
        forgetUnfolded(work, job.id, unfolded);
        if (r.rejected > 0) {
          code = ExitCode.error;
          message = `${r.rejected} pack(s) rejected by the network: ${r.firstRejection}`;
          process.stderr.write(`backupagentdq: job ${job.id}: ERROR: ${message}\n`);
        }
        if (r.transient) {
          const back = r.unsent;
          work.unclaim(back.map((i) => i.id));
          const line =
            `job ${job.id}: RE-RUN: ${r.transient.message}; ${back.length} item(s) wait for the next run`;
          log.warn(line);
          process.stderr.write(`backupagentdq: ${line}\n`);
          if (code === ExitCode.ok) code = ExitCode.rerun;
          break;
        }
      }
      if (process.stderr.isTTY && stats.uploaded) process.stderr.write("\n");
      const secs = ((Date.now() - t0) / 1000).toFixed(2);
      log.info(
        `job ${job.id}: ${stats.items} item(s) in ${stats.uploaded} pack(s) applied, ` +
          `${stats.sentBytes} bytes sent (${stats.resumed} resumed), ${stats.rejected} item(s) ` +
          `rejected in ${secs} s`,
      );
      if (stats.uploaded || stats.rejected || code !== ExitCode.ok) {
        const base = {
          jobId: job.id,
          jobTitle: job.title,
          jobType: job.type,
          session: session ?? sessionOf(),
          program: "backupagentdq",
        };
        if (message) writeReport(ctx.paths.messages, { ...base, kind: "JE", message });
        writeReport(ctx.paths.messages, {
          ...base,
          kind: "JS",
          stats: {
            uploaded: stats.uploaded,
            items: stats.items,
            sentBytes: stats.sentBytes,
            resumed: stats.resumed,
            rejected: stats.rejected,
          },
        });
      }
      if (code === ExitCode.error) worst = ExitCode.error;
      else if (code === ExitCode.rerun && worst === ExitCode.ok) worst = ExitCode.rerun;
    }
    log.info(`end: exit ${worst}`);
    return worst;
  } finally {
    client?.close();
    work.close();
    log.close();
  }
}
