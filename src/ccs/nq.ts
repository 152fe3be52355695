/**
 * backupagentnq: the CCS enqueuer. Per job, three phases, each logged with counts and times:
 * peek (source walk + cloud listing + diff + move promotion), pack (pack files into
 * Spool/Work), prune (cloud deletes under the delete collar).
 *
 * @module
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { AppContext } from "../core/context.ts";
import { CncopError, ExitCode, messageOf, TransientError, UsageError } from "../core/errors.ts";
import type { Job } from "../core/jobs_db.ts";
import { acquireLock, appLockPath, type HeldLock, jobLockPath } from "../core/lock.ts";
import { createUniqueLog, logBaseName, type Logger } from "../core/log.ts";
import { jobReporter } from "../core/spool.ts";
import type { NetworkClient, RemoteFile } from "../network/client.ts";
import { agentClient } from "./cloud.ts";
import { FileStates, useForks } from "./file_state.ts";
import { type DeleteCandidate, promoteMoves } from "./moves.ts";
import { packPlanned, type PackStats, removeStrayFiles } from "./pack.ts";
import {
  addCandidates,
  type AddRow,
  cloudRows,
  diffCounts,
  fingerprintOf,
  goneFiles,
  PeekXmlWriter,
  planContent,
  planSmall,
  planWalked,
  type QuickScan,
  quickScan,
  rootExists,
  scanSource,
  type ScanSummary,
  smallDiff,
  walkOptionsFor,
} from "./peek.ts";
import { PlanFeed } from "./plan_feed.ts";
import { planPrune, type PrunePlan } from "./prune.ts";
import { pruneSignaturesDaily } from "./signature_cache.ts";
import { type NewItem, openWorkDb, Stage, type WorkDb } from "./work_queue.ts";

/** Options of {@link runNq} (the command line). */
export interface NqOptions {
  dryRun?: boolean;
  noMaxDelete?: boolean;
  noAppLock?: boolean;
  skipMoves?: boolean;
  skipDeletes?: boolean;
  skipPeekSource?: boolean;
  skipPeekCloud?: boolean;
  forcePeek?: boolean;
  nicld?: boolean;
  suppressMissing?: boolean;
  savePeek?: string;
  peekLog?: boolean;
  noLinks?: boolean;
  fork?: "auto" | "on" | "off";
  useVss?: boolean;
  /** Items of each queue a dry run prints. @default 10 */
  show?: number;
  /** Dispatcher job session (CNCOP_JOB_SESSION). */
  session?: string;
  /** Where dry-run output goes. @default stdout */
  out?: (line: string) => void;
}

/** The session a run belongs to: the dispatcher's, else a new one. */
export function sessionOf(env: Record<string, string | undefined> = process.env): string {
  return env.CNCOP_JOB_SESSION || `manual-${Date.now()}-${process.pid}`;
}

/** The CCS jobs named by `refs` (id or title), or every enabled CCS job. */
export function selectCcsJobs(ctx: AppContext, refs: string[]): Job[] {
  const db = ctx.openJobs();
  try {
    const jobs = refs.length
      ? refs.map((r) => db.find(r))
      : db.list().filter((j) => j.type === "CCS" && j.enabled);
    for (const j of jobs) {
      if (j.type !== "CCS") {
        throw new UsageError(`job ${j.id} "${j.title}" is a ${j.type} job, not CCS`, {
          hint: "backupagentnq and backupagentdq run CCS jobs only",
        });
      }
    }
    return jobs;
  } finally {
    db.close();
  }
}

/**
 * `it` with its first step already under way (a request sent, its answer awaited), so the
 * caller can do other work meanwhile. A failure waits for the caller to read it.
 */
function started<T>(it: AsyncGenerator<T>): AsyncGenerator<T> {
  const first = it.next();
  first.catch(() => {}); // seen by the caller's first next()
  let pending: Promise<IteratorResult<T>> | undefined = first;
  return {
    next() {
      const p = pending ?? it.next();
      pending = undefined;
      return p;
    },
    return(v?: unknown) {
      pending = undefined;
      return it.return(v as T);
    },
    throw(e?: unknown) {
      pending = undefined;
      return it.throw(e);
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  } as AsyncGenerator<T>;
}

/** `rest` with an already drawn first result put back in front. */
async function* prepend<T>(
  first: IteratorResult<T>,
  rest: AsyncIterator<T>,
): AsyncGenerator<T> {
  if (first.done) return;
  yield first.value;
  for (let r = await rest.next(); !r.done; r = await rest.next()) yield r.value;
}

/** One line on stderr for a job that did not end OK (the dispatcher keeps agents' stderr). */
const say = (line: string) => process.stderr.write(`backupagentnq: ${line}\n`);
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const mb = (n: number) => `${(n / 1048576).toFixed(1)} MB`;

/** Outcome of one job. */
interface JobOutcome {
  code: number;
  stats: Record<string, number>;
}

/**
 * Runs the enqueuer for `refs` (all enabled CCS jobs when empty). Returns the exit status:
 * 0 OK, 1 ERROR (any job failed), 75 RE-RUN (the network could not be reached; no job
 * failed otherwise).
 */
export async function runNq(ctx: AppContext, refs: string[], o: NqOptions): Promise<number> {
  if (o.useVss && process.platform !== "win32") {
    throw new UsageError(
      `--usevss needs Windows (VSS snapshots); this system is ${process.platform}`,
      {
        hint: "leave out --usevss",
      },
    );
  }
  const jobs = selectCcsJobs(ctx, refs);
  const log = ctx.openLog(o.noAppLock ? "NQU" : "NQ", "daily", "backupagentnq");
  const session = o.session ?? sessionOf();
  o = { ...o, session };
  const work = openWorkDb(join(ctx.paths.work, "work.db"));
  let appLock: HeldLock | undefined;
  try {
    log.info(`start: ${jobs.length} job(s), session ${session}${o.dryRun ? ", dry run" : ""}`);
    if (jobs.length === 0) log.info("no enabled CCS job");
    if (!o.dryRun) { for (const j of jobs) work.startRun(session, j.id); }
    work.pruneRuns();
    if (!o.noAppLock) {
      appLock = await acquireLock(appLockPath(ctx.paths, "backupagentnq"), {
        mode: "wait",
        what: "the application lock of backupagentnq",
        onWait: () => log.info("another backupagentnq is running: waiting for it"),
      });
    }
    let worst: number = ExitCode.ok;
    for (const job of jobs) {
      const r = await runJob(ctx, work, log, job, session, o);
      if (!o.dryRun) work.endRun(session, job.id, r.code === ExitCode.ok);
      if (r.code === ExitCode.error) worst = ExitCode.error;
      else if (r.code === ExitCode.rerun && worst === ExitCode.ok) worst = ExitCode.rerun;
    }
    log.info(`end: exit ${worst}`);
    return worst;
  } finally {
    appLock?.release();
    work.close();
    log.close();
  }
}

async function runJob(
  ctx: AppContext,
  work: WorkDb,
  log: Logger,
  job: Job,
  session: string,
  o: NqOptions,
): Promise<JobOutcome> {
  const label = `job ${job.id} "${job.title}"`;
  const stats: Record<string, number> = {};
  const write = jobReporter(ctx.paths.messages, {
    jobId: job.id,
    jobTitle: job.title,
    jobType: job.type,
    session,
    program: "backupagentnq",
  });
  const report = (kind: "JE" | "JS", message?: string) => {
    if (o.dryRun) return;
    write(kind, { ...(message ? { message } : {}), ...(kind === "JS" ? { stats } : {}) });
  };
  const lock = await acquireLock(jobLockPath(ctx.paths, job.id), {
    mode: "wait",
    what: label,
    onWait: () => log.info(`${label}: another run of this job is active: waiting for it`),
  });
  let client: NetworkClient | undefined;
  try {
    log.info(`${label}: source ${job.source}`);
    const code = await enqueueJob(ctx, work, log, job, o, stats, () => {
      client ??= agentClient(ctx.config);
      return client;
    });
    if (code.error) {
      log.error(`${label}: ERROR: ${code.error}`);
      say(`${label}: ERROR: ${code.error}`);
      report("JE", code.error);
      report("JS");
      return { code: ExitCode.error, stats };
    }
    report("JS");
    log.info(`${label}: OK`);
    return { code: ExitCode.ok, stats };
  } catch (err) {
    if (err instanceof TransientError) {
      log.warn(`${label}: RE-RUN: ${err.message}`);
      say(`${label}: RE-RUN: ${err.message}`);
      return { code: ExitCode.rerun, stats };
    }
    const msg = err instanceof CncopError ? err.message : `internal error: ${messageOf(err)}`;
    log.error(`${label}: ERROR: ${msg}`);
    say(`${label}: ERROR: ${msg}`);
    if (!(err instanceof CncopError) && err instanceof Error && err.stack) log.debug(err.stack);
    report("JE", msg);
    return { code: ExitCode.error, stats };
  } finally {
    client?.close();
    lock.release();
  }
}

function progress(label: string): ((n: number, total: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  let last = 0;
  return (n, total) => {
    const now = Date.now();
    if (n < total && now - last < 200) return;
    last = now;
    process.stderr.write(`\r${label} ${n}/${total}${n === total ? "\n" : ""}`);
  };
}

/** What the peek queued. */
interface Queued {
  /** Moves, deletes and moved updates planned from memory. */
  items: number;
  adds: number;
  updates: number;
  folderMoves: number;
  fileMoves: number;
  hashed: number;
  unchanged: number;
  prune: PrunePlan<unknown>;
}

async function enqueueJob(
  ctx: AppContext,
  work: WorkDb,
  log: Logger,
  job: Job,
  o: NqOptions,
  stats: Record<string, number>,
  getClient: () => NetworkClient,
): Promise<{ error?: string }> {
  const root = job.source;
  const jobKey = String(job.id);
  const choice = { noLinks: o.noLinks, nicld: o.nicld };

  // Leftovers of an interrupted run are planned again from the cloud's real state.
  if (!o.dryRun) {
    const t = Date.now();
    for (;;) {
      const left = work.discardLeftovers(job.id);
      for (const f of left.files) rmSync(f, { force: true });
      if (left.sending === 0) break;
      if (Date.now() - t < 250) {
        log.info(`waiting for a dequeuer to finish ${left.sending} upload(s)`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    const stray = removeStrayFiles(work, ctx.paths.work, job.id);
    if (stray) log.info(`removed ${stray} stray file(s) of an interrupted run`);
  }

  if (!rootExists(root)) {
    stats.blockedDeletes = 1;
    return { error: `the source root ${root} is missing (unmounted?); nothing was deleted` };
  }

  // Skip when nothing changed. The quick scan walks with the peek's options: when it finds a
  // change, the peek goes on with the same walk instead of starting another.
  const walkOpts = walkOptionsFor(job, choice, job.include.length > 0 && !o.nicld);
  const fingerprint = fingerprintOf(job, choice);
  let walked: QuickScan | undefined;
  if (o.dryRun) work.invalidatePeekState(job.id);
  else if (!o.forcePeek && !o.skipPeekSource) {
    const st = work.peekState(job.id);
    if (st && st.fingerprint === fingerprint) {
      const t = Date.now();
      const q = walked = await quickScan(root, walkOpts, BigInt(st.newestNs));
      if (
        !q.stopped && q.errors === 0 && q.entries === st.entries &&
        q.newestNs <= BigInt(st.newestNs) && q.modes === st.modes
      ) {
        await q.end();
        stats.skipped = 1;
        stats.files = q.files;
        log.info(
          `PEEK: nothing changed: ${q.entries} entries, none newer than ${
            new Date(Number(BigInt(st.newestNs) / 1_000_000n)).toISOString()
          } (last full peek ${st.updated}); the network was not contacted (${
            secs(Date.now() - t)
          }; --forcepeek overrides)`,
        );
        return {};
      }
      log.info(
        `PEEK: changes since the last run (${
          q.errors
            ? `${q.errors} walk errors`
            : !q.stopped && q.entries !== st.entries
            ? `${q.entries} entries, were ${st.entries}`
            : !q.stopped && q.newestNs <= BigInt(st.newestNs)
            ? "permission bits changed"
            : `newer last-write time of ${
              q.newestPath ?? "the root"
            }: ${q.newestNs} > ${st.newestNs}`
        }; ${secs(Date.now() - t)} to find out)`,
      );
    }
  }

  // Phase 1: peek: the source walk into local_files, the cloud listing into cloud_files.
  // Until the peek reads it, a failure must end the quick scan's paused walk.
  const guard = <T>(f: () => T): T => {
    try {
      return f();
    } catch (err) {
      void walked?.end();
      throw err;
    }
  };
  const session = o.session ?? sessionOf();
  if (!o.dryRun) guard(() => work.markPeeking(session, job.id));
  const t0 = Date.now();
  const source = async (): Promise<ScanSummary> => {
    if (o.skipPeekSource && work.localCount(job.id) > 0) {
      const n = work.localCount(job.id);
      log.info(`PEEK: --skippeeksource: using the saved source listing (${n} files)`);
      return {
        files: n,
        dirs: 0,
        bytes: 0,
        errors: 0,
        excluded: 0,
        entries: n,
        newestNs: 0n,
        modes: "",
      };
    }
    return await scanSource(
      work,
      job.id,
      root,
      walkOpts,
      log,
      !!o.nicld,
      walked?.walk,
      feed && ((files) => feed.add(planWalked(work, job.id, session, files))),
    );
  };
  const cloud = async (listing: AsyncIterable<RemoteFile[]>): Promise<number> => {
    const writers: PeekXmlWriter[] = [];
    let n: number;
    try {
      if (o.savePeek) writers.push(new PeekXmlWriter(o.savePeek, jobKey));
      if (o.peekLog) {
        const { path, fd } = createUniqueLog(
          ctx.paths.logs,
          logBaseName("NQPK", "unique", new Date()),
        );
        writers.push(new PeekXmlWriter(path, jobKey, fd));
        log.info(`PEEK: cloud peek logged to ${path}`);
      }
      n = await work.saveCloud(job.id, cloudRows(listing, writers));
    } finally {
      for (const w of writers) w.close();
    }
    if (o.savePeek) log.info(`PEEK: cloud peek saved to ${o.savePeek}`);
    return n;
  };
  // One after the other: side by side they took as long (both need the one JS thread) and,
  // for a million files, doubled the peak memory (170 -> 340 MB). But the listing is asked
  // for first: the network builds it and fills the socket while the walk runs, and the rest
  // waits in TCP's buffers until it is read.
  const reuseCloud = o.skipPeekCloud && guard(() => work.hasSavedCloud(job.id));
  // The saved listing (with the dequeuer's packs folded in) is asked for by its tag: when
  // nothing else changed the job, the network answers 304 and sends no file. A listing to
  // save or log is read whole, and so is one after --forcepeek.
  const ifTag = o.forcePeek || o.savePeek || o.peekLog
    ? undefined
    : guard(() => work.cloudTag(job.id));
  const answer: { tag?: string; unchanged: boolean } = { unchanged: false };
  const listing = reuseCloud ? undefined : started(async function* () {
    const client = getClient();
    if (!o.dryRun) await client.setRetention(jobKey, job.retentionDays);
    yield* client.peekBatches(jobKey, {
      ifTag,
      onTag: (tag, unchanged) => Object.assign(answer, { tag, unchanged }),
    });
  }());
  // A first backup streams: with no saved source listing and an empty cloud, every file
  // the walk lists is an ADD (nothing to move, update or delete), planned with its batch
  // and packed at once, while the walk goes on (see PlanFeed). The cloud's answer is
  // awaited before the walk for that, only when there is no listing to compare.
  let first: IteratorResult<RemoteFile[]> | undefined;
  if (listing && !o.dryRun && !o.skipPeekSource && guard(() => !work.hasLocal(job.id))) {
    try {
      first = await listing.next();
    } catch (err) {
      await walked?.end();
      throw err;
    }
  }
  const feed = first?.done && !answer.unchanged ? new PlanFeed() : undefined;
  /** Saves the cloud listing (or keeps the saved one); returns how many files it has. */
  const saveListing = async (): Promise<number> => {
    if (!listing) {
      const n = work.cloudCount(job.id);
      log.info(`PEEK: --skippeekcloud: using the saved cloud peek (${n} files)`);
      return n;
    }
    // Drawn first: the answer says whether the saved listing still holds.
    first ??= await listing.next();
    if (answer.unchanged) {
      const n = work.cloudCount(job.id);
      log.info(`PEEK: the saved cloud listing still holds (${n} files, tag ${ifTag})`);
      return n;
    }
    const n = await cloud(prepend(first, listing));
    work.setCloudTag(job.id, answer.tag ?? null);
    return n;
  };
  // A streamed first backup's (empty) listing and its tag are saved before anything is
  // packed: the dequeuer folds each applied pack into them as it goes.
  let streamedCloud: number | undefined;
  try {
    if (feed) streamedCloud = await saveListing();
  } catch (err) {
    await walked?.end();
    throw err;
  }
  const states = new FileStates(work, job.id, useForks(root, o.fork ?? "auto", ctx.paths.work));
  const bar = progress("packing");
  /** What the bar showed last, and whether that was its last line. */
  let shown = { n: 0, ended: false };
  const packing = (total: () => number, client?: NetworkClient) =>
    packPlanned({
      work,
      workDir: ctx.paths.work,
      job: job.id,
      jobKey,
      root,
      client,
      states,
      log,
      suppressMissing: !!o.suppressMissing,
      onItem: bar
        ? (n) => {
          const t = total();
          shown = { n, ended: n === t };
          bar(n, t);
        }
        : undefined,
      feed,
    });
  // Until planning ends the total is not known: the bar counts one more than packed.
  const streamed = feed && packing(() => feed.ended ? feed.planned : feed.planned + 1);
  streamed?.catch(() => {}); // awaited below, after the walk
  let t1 = Date.now();
  let scan: ScanSummary;
  try {
    scan = await source();
  } catch (err) {
    void listing?.return(undefined).catch(() => {}); // the client closes its sockets
    // The packer stops at its next page; the packs it finished stay for the dequeuer.
    feed?.end(err);
    await streamed?.catch(() => {});
    throw err;
  } finally {
    await walked?.end();
  }
  feed?.end();
  const tWalk = Date.now();
  const cloudCount = streamedCloud ?? await saveListing();
  const tPeeked = Date.now();
  const pruneOf = <T>(deletes: T[], total?: number) =>
    planPrune(deletes, {
      rootExists: true,
      localFiles: scan.files,
      cloudFiles: cloudCount,
      walkErrors: scan.errors,
    }, {
      collar: job.deleteCollar,
      noMaxDelete: o.noMaxDelete,
      skipDeletes: o.skipDeletes,
      total,
    });
  /** Plans the queues, in one transaction (rolled back by a dry run once it has shown them). */
  const planQueues = async (): Promise<Queued> => {
    // The listing's size as the walk knew it, else counted (two walked names may make one
    // path: invalid UTF-8 made alike).
    const small = smallDiff(work, job.id, { local: scan.listed, cloud: cloudCount });
    const counts = small?.counts ?? diffCounts(work, job.id);
    // Move promotion needs every gone file, but only when some local file is new; otherwise
    // only the deletes this run may send are loaded (a million deleted files stay in SQL).
    const pairing = !o.skipMoves && counts.adds > 0;
    const goneLimit = pairing || o.noMaxDelete ? undefined : o.skipDeletes ? 0 : job.deleteCollar;
    const gone: DeleteCandidate[] = counts.deletes ? goneFiles(work, job.id, goneLimit) : [];
    const abs = (p: string) => join(root, p);
    const goneSizes = new Set(gone.map((g) => g.size));
    const candidates = o.skipMoves || gone.length === 0
      ? []
      : small
      ? small.adds.filter((a) => goneSizes.has(a.size))
      : addCandidates(work, job.id, goneSizes);
    if (gone.length) states.lookAhead(candidates.map((a) => ({ ...a, abs: abs(a.path) })));
    const plan = await promoteMoves<AddRow>(candidates, o.skipMoves ? [] : gone, {
      hashOf: (a) => states.hash({ ...a, abs: abs(a.path) }),
      cloudCountUnder: (p) => work.cloudCount(job.id, p),
    });
    const deletes = o.skipMoves ? gone : plan.deletes;
    // A file of a moved folder that changed size was no move candidate: it is still an
    // UPDATE (a delta against its old version at the new path), not a DELETE + ADD.
    const movedGone: DeleteCandidate[] = [];
    for (const d of plan.movedDeletes) {
      const l = work.localFile(job.id, d.path);
      if (l) plan.updates.push({ add: l, base: d });
      else movedGone.push(d);
    }
    // Without pairing, nothing was taken from the gone files: all of them are deletes.
    const prune = pruneOf([...movedGone, ...deletes], pairing ? undefined : counts.deletes);

    // The queues, in one transaction (rolled back by a dry run once it has shown them).
    const items: NewItem[] = [];
    for (const f of plan.folderMoves) {
      items.push({
        kind: "MOVE",
        path: f.from,
        newPath: f.to,
        folder: true,
        stage: Stage.folderMove,
      });
    }
    for (const m of plan.fileMoves) {
      items.push({ kind: "MOVE", path: m.from, newPath: m.to, stage: Stage.fileMove });
    }
    for (const u of plan.updates) {
      items.push({
        kind: "UPDATE",
        path: u.add.path,
        size: u.add.size,
        mtimeNs: u.add.mtimeNs,
        mode: u.add.mode,
        ino: u.add.ino,
        dev: u.add.dev,
        baseVersion: u.base.version,
        baseHash: u.base.hash,
      });
    }
    for (const d of prune.now) items.push({ kind: "DELETE", path: d.path });
    // Candidates a move or an update took care of (file moves, folder moves, moved updates).
    const stillAdds = new Set(plan.adds);
    const taken = [
      ...candidates.filter((a) => !stillAdds.has(a)).map((a) => a.path),
      ...plan.updates.map((u) => u.add.path),
    ];
    work.db.exec("BEGIN IMMEDIATE");
    let planned: { adds: number; updates: number };
    try {
      work.addItems(job.id, session, items);
      planned = small
        ? planSmall(work, job.id, session, small, taken)
        : planContent(work, job.id, session, taken, counts);
      if (o.dryRun) printDryRun(o, job, work, session, prune.pending);
      work.db.exec(o.dryRun ? "ROLLBACK" : "COMMIT");
    } catch (err) {
      work.db.exec("ROLLBACK");
      throw err;
    }
    return {
      items: items.length,
      adds: planned.adds,
      updates: planned.updates + plan.updates.length,
      folderMoves: plan.folderMoves.length,
      fileMoves: plan.fileMoves.length,
      hashed: plan.hashed,
      unchanged: counts.unchanged,
      prune,
    };
  };
  // A streamed first backup planned an ADD of every file with the walk, and nothing else.
  const q: Queued = feed
    ? {
      items: 0,
      adds: feed.planned,
      updates: 0,
      folderMoves: 0,
      fileMoves: 0,
      hashed: 0,
      unchanged: 0,
      prune: pruneOf([]),
    }
    : await planQueues();
  const prune = q.prune;
  const tPlan = Date.now();
  Object.assign(stats, {
    files: scan.files,
    dirs: scan.dirs,
    bytes: scan.bytes,
    walkErrors: scan.errors,
    cloudFiles: cloudCount,
    unchanged: q.unchanged,
    queuedAdds: q.adds,
    queuedUpdates: q.updates,
    folderMoves: q.folderMoves,
    fileMoves: q.fileMoves,
    queuedDeletes: prune.now.length,
    pendingDeletes: prune.pending,
    hashed: q.hashed,
  });
  log.info(
    `PEEK: ${scan.files} files (${
      mb(scan.bytes)
    }), ${scan.dirs} dirs, ${scan.errors} walk errors ` +
      `in ${secs(tWalk - t0)}; cloud ${cloudCount} files in ${secs(tPeeked - tWalk)}; ` +
      `${q.adds} ADD${feed ? " (planned and packed with the walk)" : ""}, ${q.updates} UPDATE, ` +
      `${q.folderMoves} folder MOVE + ${q.fileMoves} file MOVE, ` +
      `${prune.now.length} DELETE (${prune.pending} pending), ${q.unchanged} unchanged; ` +
      `hashed ${q.hashed} (fork ${states.counts.fork}, cache ${states.counts.cache}, ` +
      `inode ${states.counts.inode}, read ${states.counts.read}) in ${secs(tPlan - tPeeked)}`,
  );
  if (o.dryRun) return prune.blocked ? { error: `no deletes: ${prune.blocked}` } : {};

  // Signature cache: forget signatures of content no job refers to any more (a cache only).
  try {
    const sp = pruneSignaturesDaily(ctx.paths.work, work.db, { force: o.forcePeek });
    if (sp?.removed) log.info(`PEEK: ${sp.removed} unused signature(s) removed, ${sp.kept} kept`);
  } catch (err) {
    log.warn(`PEEK: the signature cache was not pruned: ${messageOf(err)}`);
  }

  const total = q.items + q.adds + q.updates;

  // Phase 2: pack (a streamed first backup's began with the walk).
  if (!streamed) t1 = Date.now();
  const ps: PackStats = await (streamed ??
    packing(() => total, cloudCount > 0 ? getClient() : undefined));
  // A streamed run may have packed its last item before the walk ended: the bar's last line.
  if (bar && shown.n > 0 && !shown.ended) bar(shown.n, shown.n);
  Object.assign(stats, {
    packed: ps.packed,
    packBytes: ps.packBytes,
    deltas: ps.deltas,
    deltaFallbacks: ps.deltaFallbacks,
    missing: ps.missing,
    changedWhilePacking: ps.changed,
    packFailures: ps.failed,
  });
  log.info(
    `PACK: ${ps.packed} items in ${ps.packFiles} packs (${
      mb(ps.packBytes)
    }): ${ps.adds} add, ${ps.updates} update ` +
      `(${ps.deltas} delta, ${ps.deltaFallbacks} sent whole), ${ps.moves} move, ${ps.deletes} ` +
      `delete; ${ps.missing} vanished, ${ps.changed} still changing, ${ps.failed} failed in ${
        secs(Date.now() - t1)
      }`,
  );

  // Phase 3: prune (the deletes are packs too; here is the verdict).
  if (prune.blocked) {
    log.error(`PRUNE: no deletes: ${prune.blocked}; ${prune.pending} delete(s) held back`);
  } else if (prune.skipped) {
    log.info(`PRUNE: --skipdeletes: ${prune.pending} delete(s) left for a later run`);
  } else {
    log.info(
      `PRUNE: ${prune.now.length} delete(s) queued` +
        (prune.pending
          ? `, ${prune.pending} pending over the delete collar of ${job.deleteCollar}`
          : ""),
    );
  }
  const clean = !prune.blocked && prune.pending === 0 && scan.errors === 0 && ps.missing === 0 &&
    ps.changed === 0 && ps.failed === 0 && !o.skipPeekSource;
  if (clean) {
    work.setPeekState(job.id, {
      newestNs: String(scan.newestNs),
      entries: scan.entries,
      fingerprint,
      modes: scan.modes,
    });
  } else work.invalidatePeekState(job.id);
  if (prune.blocked) return { error: `no deletes: ${prune.blocked}` };
  if (ps.failed) return { error: `${ps.failed} file(s) could not be packed (see the NQ log)` };
  return {};
}

function printDryRun(
  o: NqOptions,
  job: Job,
  work: WorkDb,
  session: string,
  pending: number,
): void {
  const out = o.out ?? ((l: string) => process.stdout.write(l + "\n"));
  const show = o.show ?? 10;
  out(`job ${job.id} "${job.title}": dry run, nothing is sent`);
  for (const kind of ["MOVE", "ADD", "UPDATE", "DELETE"] as const) {
    const n =
      (work.stmt("SELECT count(*) AS n FROM items WHERE job = ? AND session = ? AND kind = ?").get(
        job.id,
        session,
        kind,
      ) as { n: number }).n;
    out(`  ${kind}: ${n}${kind === "DELETE" && pending ? ` (+${pending} pending)` : ""}`);
    const first = work.stmt(
      `SELECT path, new_path, folder FROM items WHERE job = ? AND session = ? AND kind = ?
       ORDER BY stage, id LIMIT ?`,
    ).all(job.id, session, kind, show) as {
      path: string;
      new_path: string | null;
      folder: number;
    }[];
    for (const i of first) {
      out(`    ${i.path}${i.new_path ? ` -> ${i.new_path}${i.folder ? "/ (folder)" : ""}` : ""}`);
    }
    if (n > show) out(`    ... ${n - show} more`);
  }
}
