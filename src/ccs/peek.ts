/**
 * Peek: the source walk, the cloud listing and their difference.
 *
 * The walk's files go into `local_files` and the cloud's into `cloud_files` of work.db, and
 * SQL joins give the ADD, changed and DELETE sets, so a tree of a million files never has to
 * sit in memory twice. A file whose size and mtime equal the cloud's is unchanged and is not
 * read.
 *
 * @module
 */
import { closeSync, openSync, statSync, writeSync } from "node:fs";
import type { Job } from "../core/jobs_db.ts";
import { releaseMemory } from "../core/memory.ts";
import { RowBatch } from "../core/row_batch.ts";
import type { Logger } from "../core/log.ts";
import { native, type WalkEntry, type WalkOptions } from "../native/mod.ts";
import type { RemoteFile } from "../network/client.ts";
import {
  byteOrderLess,
  type CloudFile,
  type LocalFile,
  type NewItem,
  Stage,
  walkKey,
  type WorkDb,
} from "./work_queue.ts";

/** Options that shape the walk. */
export interface WalkChoice {
  /** `--nolinks`: skip symlinks (default: follow them). */
  noLinks?: boolean;
  /** `--nicld`: do not log files left out by the include filters. */
  nicld?: boolean;
}

/** The native walk options for `job`. */
export function walkOptionsFor(job: Job, c: WalkChoice, reportExcluded: boolean): WalkOptions {
  return {
    followLinks: !c.noLinks,
    skipLinks: c.noLinks === true,
    include: job.include,
    exclude: job.exclude,
    reportExcluded,
  };
}

/** What identifies the source a peek state was taken from. */
export function fingerprintOf(job: Job, c: WalkChoice): string {
  return JSON.stringify([job.source, job.include, job.exclude, c.noLinks === true]);
}

/** Whether `root` is an existing directory. */
export function rootExists(root: string): boolean {
  try {
    return statSync(root).isDirectory();
  } catch {
    return false;
  }
}

/** Summary of a walk. */
export interface ScanSummary {
  files: number;
  dirs: number;
  bytes: number;
  errors: number;
  excluded: number;
  /** Files + directories. */
  entries: number;
  /** Newest mtime of any file or directory (ns). */
  newestNs: bigint;
  /** The entry with that mtime ("" for the root). */
  newestPath?: string;
  /** Digest of the files' permission bits (see {@link ModeDigest}). */
  modes: string;
  /**
   * Rows of the saved source listing after {@link scanSource}, when it knows them without
   * counting: the walk's keys were strictly increasing, so no two files made one row.
   */
  listed?: number;
}

function emptySummary(): ScanSummary {
  return {
    files: 0,
    dirs: 0,
    bytes: 0,
    errors: 0,
    excluded: 0,
    entries: 0,
    newestNs: 0n,
    modes: "",
  };
}

/**
 * An order-independent digest of (inode, permission bits) over the files of a walk: a chmod
 * changes neither size nor mtime, only ctime (which the skip test cannot use: writing a
 * fork changes it), so the skip state keeps this too. Two 32-bit sums, arithmetic only.
 */
export class ModeDigest {
  #a = 0;
  #b = 0;
  add(ino: bigint, mode: number): void {
    const lo = Number(BigInt.asUintN(32, ino));
    const m = mode & 0o7777;
    this.#a = (this.#a + Math.imul(lo ^ (m << 20), 0x9e3779b1)) >>> 0;
    this.#b = (this.#b + Math.imul((lo + Math.imul(m + 1, 0x85ebca6b)) | 0, 0xc2b2ae35)) >>> 0;
  }
  toString(): string {
    return `${this.#a.toString(16)}.${this.#b.toString(16)}`;
  }
}

/**
 * Walk batches between two releases of memory (src/core/memory.ts): a walk of a million
 * files leaves the garbage of 250 batches of 4,096 entries.
 */
const RELEASE_BATCHES = 64;

/** Walk entries a quick scan keeps for the peek that follows (about 40 MB at most). */
export const RETAIN_ENTRIES = 131_072;

/** What {@link quickScan} found. */
export interface QuickScan extends ScanSummary {
  /** The walk stopped at the first error or newer entry: the summary is partial. */
  stopped?: boolean;
  /**
   * The walk as the peek needs it: the batches seen so far, then the rest of the same walk
   * (when stopped). Undefined when more than {@link RETAIN_ENTRIES} entries were seen: the
   * peek walks again.
   */
  walk?: AsyncIterable<WalkEntry[]>;
  /** Ends the walk (when `walk` is not read to its end). */
  end(): Promise<void>;
}

/**
 * Walks `root` for the newest last-write time only (no database, no hashing): what the
 * skip-when-unchanged test needs. The root directory itself counts. With `stopAfterNs`, the
 * walk stops at the first error or the first entry newer than that (the run peeks anyway).
 * Give it the peek's walk options: its batches are kept, so the peek does not walk again.
 */
export async function quickScan(
  root: string,
  options: WalkOptions,
  stopAfterNs?: bigint,
  retain: number = RETAIN_ENTRIES,
): Promise<QuickScan> {
  const walk = native.walk(root, options)[Symbol.asyncIterator]() as AsyncGenerator<WalkEntry[]>;
  const end = async () => void await walk.return(undefined);
  const s: QuickScan = { ...emptySummary(), end };
  s.newestNs = BigInt(statSync(root, { bigint: true }).mtimeNs);
  const stop = () => stopAfterNs !== undefined && (s.errors > 0 || s.newestNs > stopAfterNs);
  let kept: WalkEntry[][] | undefined = [];
  let keptEntries = 0;
  const rest = async function* (batches: WalkEntry[][], more: boolean) {
    try {
      for (let b = batches.shift(); b; b = batches.shift()) yield b;
      if (more) { for (let r = await walk.next(); !r.done; r = await walk.next()) yield r.value; }
    } finally {
      await end();
    }
  };
  if (stop()) return { ...s, stopped: true, walk: rest([], true) };
  const modes = new ModeDigest();
  let batches = 0;
  for (let r = await walk.next(); !r.done; r = await walk.next()) {
    const batch = r.value;
    if (++batches % RELEASE_BATCHES === 0) releaseMemory(native);
    if (kept) {
      kept.push(batch);
      keptEntries += batch.length;
      if (keptEntries > retain) kept = undefined;
    }
    for (const e of batch) {
      if (e.kind === "error") {
        s.errors++;
        continue;
      }
      if (e.excluded || (e.kind !== "file" && e.kind !== "dir")) continue;
      if (e.kind === "file") {
        s.files++;
        s.bytes += e.size;
        modes.add(e.ino, e.mode);
      } else s.dirs++;
      s.entries++;
      if (e.mtimeNs > s.newestNs) {
        s.newestNs = e.mtimeNs;
        s.newestPath = e.path;
      }
    }
    if (stop()) {
      if (kept) return { ...s, stopped: true, walk: rest(kept, true) };
      await end(); // the native walk stops listing
      return { ...s, stopped: true };
    }
  }
  s.modes = modes.toString();
  return kept ? { ...s, walk: rest(kept, false) } : s;
}

/**
 * Walks `root` into the saved source listing of `job`, logging walk errors and (unless
 * `nicld`) files the include filters leave out as PEEK-NICLD lines. `walk` is a walk of
 * `root` with `options` already under way (a quick scan's), else a new one.
 *
 * The listing is updated, not rewritten: it is keyed in the walk's order ({@link walkKey}),
 * so each batch of the walk is compared with the saved rows of its key range and only new
 * or changed files are written and vanished ones deleted (a folder rename in a tree of 84k
 * files writes 11k rows instead of deleting and inserting 84k). A batch out of that order
 * (names holding \x01 or \x02) ends the comparison: what follows is written whole.
 *
 * `written`, when given, is called with each batch's new or changed files inside the
 * transaction that writes them (a first backup plans them there, see `PlanFeed`).
 */
export async function scanSource(
  work: WorkDb,
  job: number,
  root: string,
  options: WalkOptions,
  log: Logger,
  nicld: boolean,
  walk: AsyncIterable<WalkEntry[]> | Iterable<WalkEntry[]> = native.walk(root, options),
  written?: (files: WalkEntry[]) => void,
): Promise<ScanSummary> {
  const s = emptySummary();
  s.newestNs = BigInt(statSync(root, { bigint: true }).mtimeNs);
  const modes = new ModeDigest();
  const put = new RowBatch(
    (sql) => work.stmt(sql),
    "INSERT OR REPLACE INTO local_files (job, wkey, path, size, mtime_ns, mode, ino, dev)",
    8,
  );
  // Rows as arrays: objects cost twice as much to build (4,096 rows a batch).
  const saved = work.db.prepare(
    `SELECT wkey, size, mtime_ns, mode, ino, dev FROM local_files
     WHERE job = ? AND wkey > ? AND wkey <= ? ORDER BY wkey`,
  );
  saved.setReturnArrays(true);
  const drop = work.stmt("DELETE FROM local_files WHERE job = ? AND wkey = ?");
  const dropAfter = work.stmt("DELETE FROM local_files WHERE job = ? AND wkey > ?");
  /** The batch's files written, for `written`, and the last one's key. */
  const fresh: WalkEntry[] = [];
  let lastKey: string | undefined;
  let after = ""; // every saved row up to this key matches the walk
  let ordered = true;
  let batches = 0;
  for await (const batch of walk) {
    if (++batches % RELEASE_BATCHES === 0) releaseMemory(native);
    const files: { e: WalkEntry; key: string }[] = [];
    for (const e of batch) {
      if (scanEntry(e)) files.push({ e, key: walkKey(e.path) });
    }
    if (files.length === 0) continue;
    work.db.exec("BEGIN IMMEDIATE");
    try {
      if (ordered && !inOrder(files, after)) {
        ordered = false;
        dropAfter.run(job, after);
      }
      if (ordered) compare(files);
      else for (const f of files) write(f);
      put.flush();
      if (written && fresh.length > 0) written(fresh.splice(0));
      work.db.exec("COMMIT");
    } catch (err) {
      put.discard();
      fresh.length = 0;
      work.db.exec("ROLLBACK");
      throw err;
    }
  }
  if (ordered) {
    work.tx(() => dropAfter.run(job, after));
    s.listed = s.files;
  }
  s.modes = modes.toString();
  return s;

  function inOrder(files: { key: string }[], from: string): boolean {
    let prev = from;
    for (const f of files) {
      if (!byteOrderLess(prev, f.key)) return false;
      prev = f.key;
    }
    return true;
  }

  /**
   * Merges the batch with the saved rows of its key range, both in key order: a saved row
   * the walk passed without meeting is gone. {@link inOrder} checked the batch with
   * {@link byteOrderLess}, which is SQLite's order for well-formed strings (the walk makes
   * every name valid Unicode). A map of the rows cost a third more.
   */
  function compare(files: { e: WalkEntry; key: string }[]): void {
    const last = files[files.length - 1]!.key;
    type Row = [string, number, string, number, string, string];
    const rows = saved.all(job, after, last) as unknown as Row[];
    let j = 0;
    for (const f of files) {
      while (j < rows.length && rows[j]![0] !== f.key && byteOrderLess(rows[j]![0], f.key)) {
        drop.run(job, rows[j++]![0]);
      }
      const h = j < rows.length && rows[j]![0] === f.key ? rows[j++] : undefined;
      const e = f.e;
      if (
        !h || h[1] !== e.size || h[2] !== String(e.mtimeNs) || h[3] !== (e.mode & 0o7777) ||
        h[4] !== String(e.ino) || h[5] !== String(e.dev)
      ) write(f);
    }
    while (j < rows.length) drop.run(job, rows[j++]![0]);
    after = last;
  }

  function write({ e, key }: { e: WalkEntry; key: string }): void {
    // TEXT columns take the bigints as decimal text.
    put.add(job, key, e.path, e.size, e.mtimeNs, e.mode & 0o7777, e.ino, e.dev);
    if (!written) return;
    // Two walked names that make one path (invalid UTF-8 made alike) are one row, so one
    // file: the last in a batch, as the row keeps; the first when a batch ended between them.
    if (key !== lastKey) fresh.push(e);
    else if (fresh.length > 0) fresh[fresh.length - 1] = e;
    lastKey = key;
  }

  /** Counts the entry; true for a file of the listing. */
  function scanEntry(e: WalkEntry): boolean {
    if (e.kind === "error") {
      s.errors++;
      log.warn(`PEEK-ERROR ${e.path}: ${e.error ?? "unreadable"}`);
      return false;
    }
    if (e.excluded) {
      s.excluded++;
      if (!nicld) log.info(`PEEK-NICLD ${e.path}`);
      return false;
    }
    if (e.kind !== "file" && e.kind !== "dir") return false;
    s.entries++;
    if (e.mtimeNs > s.newestNs) s.newestNs = e.mtimeNs;
    if (e.kind === "dir") {
      s.dirs++;
      return false;
    }
    s.files++;
    s.bytes += e.size;
    modes.add(e.ino, e.mode);
    return true;
  }
}

function xmlEscape(s: string): string {
  return s.replace(/[<>&"]/g, (c) => `&${{ "<": "lt", ">": "gt", "&": "amp", '"': "quot" }[c]};`);
}

/** Writes a cloud peek as XML, one `<file/>` per line (`--savepeek`, `--peeklog`). */
export class PeekXmlWriter {
  #fd: number;
  constructor(path: string, job: string, fd?: number) {
    this.#fd = fd ?? openSync(path, "w", 0o644);
    writeSync(
      this.#fd,
      `<?xml version="1.0" encoding="UTF-8"?>\n<peek job="${xmlEscape(job)}" at="${
        new Date().toISOString()
      }">\n`,
    );
  }
  add(f: CloudFile): void {
    writeSync(
      this.#fd,
      `  <file path="${
        xmlEscape(f.path)
      }" size="${f.size}" mtimeNs="${f.mtimeNs}" mode="${f.mode}" hash="${f.hash}" version="${f.version}"/>\n`,
    );
  }
  close(): void {
    writeSync(this.#fd, "</peek>\n");
    closeSync(this.#fd);
  }
}

/** The network's listing batches as cloud rows (as they are), teed to XML writers. */
export async function* cloudRows(
  listing: AsyncIterable<RemoteFile[]>,
  writers: PeekXmlWriter[],
): AsyncIterable<CloudFile[]> {
  for await (const batch of listing) {
    for (const w of writers) for (const f of batch) w.add(f);
    yield batch;
  }
}

/** A local file the cloud does not have at its path (a move candidate). */
export type AddRow = LocalFile;

/** How the saved listings differ. */
export interface DiffCounts {
  /** Local files the cloud does not have. */
  adds: number;
  /** Files whose size, mtime or permission bits differ from the cloud's. */
  changed: number;
  /** Cloud files gone locally. */
  deletes: number;
  unchanged: number;
}

/**
 * Counts the difference between the saved source and cloud listings of `job`, in one pass
 * over the source listing: the cloud files gone locally are the cloud's count less those
 * the source matched.
 */
export function diffCounts(work: WorkDb, job: number): DiffCounts {
  const r = work.stmt(
    `SELECT count(*) AS total,
            sum(c.path IS NULL) AS adds,
            sum(c.path IS NOT NULL AND (c.size != l.size OR c.mtime_ns != l.mtime_ns
              OR c.mode != l.mode)) AS changed
     FROM local_files l LEFT JOIN cloud_files c ON c.job = l.job AND c.path = l.path
     WHERE l.job = ?`,
  ).get(job) as { total: number; adds: number | null; changed: number | null };
  const adds = r.adds ?? 0;
  const changed = r.changed ?? 0;
  const deletes = work.cloudCount(job) - (r.total - adds);
  return { adds, changed, deletes, unchanged: r.total - adds - changed };
}

/** Differences of at most this many local files are planned from memory. */
export const SMALL_DIFF = 20_000;

/** A local file the cloud has at its path with other size, mtime or permission bits. */
export interface ChangedRow extends LocalFile {
  baseVersion: number;
  baseHash: string;
}

/** The local side of a small difference, whole (see {@link smallDiff}). */
export interface SmallDiff {
  /** Local files the cloud does not have, by path. */
  adds: AddRow[];
  /** Local files that differ from the cloud's, by path. */
  changed: ChangedRow[];
  counts: DiffCounts;
}

/**
 * The local files that are new or changed, in one pass over the source listing, when there
 * are at most `limit` (`known`: the listings' sizes, when the caller has them): the run then plans them from memory instead of passing over the
 * listings again for counts, move candidates and each queue. Undefined when there are more
 * (a first backup): the SQL-to-SQL path ({@link diffCounts}, {@link planContent}) is used.
 */
export function smallDiff(
  work: WorkDb,
  job: number,
  known: { local?: number; cloud?: number } = {},
  limit = SMALL_DIFF,
): SmallDiff | undefined {
  const total = known.local ?? work.localCount(job);
  const cloud = known.cloud ?? work.cloudCount(job);
  // More files on one side than the limit: more differences too (a first backup).
  if (Math.abs(total - cloud) > limit) return undefined;
  const rows = work.stmt(
    `SELECT l.path, l.size, l.mtime_ns AS mtimeNs, l.mode, l.ino, l.dev,
            c.version AS baseVersion, c.hash AS baseHash
     FROM local_files l LEFT JOIN cloud_files c ON c.job = l.job AND c.path = l.path
     WHERE l.job = ? AND (c.path IS NULL OR c.size != l.size OR c.mtime_ns != l.mtime_ns
       OR c.mode != l.mode)
     ORDER BY l.wkey LIMIT ?`,
  ).all(job, limit + 1) as unknown as (LocalFile & {
    baseVersion: number | null;
    baseHash: string | null;
  })[];
  if (rows.length > limit) return undefined;
  const adds: AddRow[] = [];
  const changed: ChangedRow[] = [];
  for (const r of rows) {
    if (r.baseVersion === null) {
      const { baseVersion: _v, baseHash: _h, ...add } = r;
      adds.push(add);
    } else changed.push(r as ChangedRow);
  }
  return {
    adds,
    changed,
    counts: {
      adds: adds.length,
      changed: changed.length,
      deletes: cloud - (total - adds.length),
      unchanged: total - rows.length,
    },
  };
}

/**
 * {@link planContent} for a {@link SmallDiff}: the same items, from memory (inside the
 * caller's transaction).
 */
export function planSmall(
  work: WorkDb,
  job: number,
  session: string,
  diff: SmallDiff,
  taken: Iterable<string>,
): { adds: number; updates: number } {
  const skip = new Set(taken);
  const items: NewItem[] = diff.changed.map((c) => ({
    kind: "UPDATE",
    path: c.path,
    size: c.size,
    mtimeNs: c.mtimeNs,
    mode: c.mode,
    ino: c.ino,
    dev: c.dev,
    baseVersion: c.baseVersion,
    baseHash: c.baseHash,
  }));
  let adds = 0;
  for (const a of diff.adds) {
    if (skip.has(a.path)) continue;
    items.push({
      kind: "ADD",
      path: a.path,
      size: a.size,
      mtimeNs: a.mtimeNs,
      mode: a.mode,
      ino: a.ino,
      dev: a.dev,
    });
    adds++;
  }
  work.addItems(job, session, items);
  return { adds, updates: diff.changed.length };
}

/** Cloud files gone locally, by path (the first `limit` when given). */
export function goneFiles(work: WorkDb, job: number, limit = -1): CloudFile[] {
  return work.stmt(
    `SELECT c.path, c.size, c.mtime_ns AS mtimeNs, c.mode, c.hash, c.version
     FROM cloud_files c
     WHERE c.job = ? AND NOT EXISTS (SELECT 1 FROM local_files l
       WHERE l.job = c.job AND l.wkey = c.wkey)
     ORDER BY c.path LIMIT ?`,
  ).all(job, limit) as unknown as CloudFile[];
}

/**
 * Local files the cloud does not have whose size is one of `sizes` (the sizes of the gone
 * files): the only adds move promotion has to look at. The others never enter memory.
 */
export function addCandidates(work: WorkDb, job: number, sizes: Iterable<number>): AddRow[] {
  work.db.exec("CREATE TEMP TABLE IF NOT EXISTS cand_sizes (size INTEGER PRIMARY KEY)");
  work.db.exec("DELETE FROM temp.cand_sizes");
  const ins = work.stmt("INSERT OR IGNORE INTO temp.cand_sizes (size) VALUES (?)");
  for (const n of sizes) ins.run(n);
  return work.stmt(
    `SELECT l.path, l.size, l.mtime_ns AS mtimeNs, l.mode, l.ino, l.dev
     FROM local_files l JOIN temp.cand_sizes z ON z.size = l.size
     WHERE l.job = ? AND NOT EXISTS (SELECT 1 FROM cloud_files c WHERE c.job = l.job AND c.path = l.path)
     ORDER BY l.wkey`,
  ).all(job) as unknown as AddRow[];
}

/**
 * Plans (inside the caller's transaction) an ADD of each of `files`, as {@link planContent}
 * would for files the cloud lacks (a first backup plans each walked batch so), many rows to
 * a statement. Returns how many.
 */
export function planWalked(
  work: WorkDb,
  job: number,
  session: string,
  files: readonly WalkEntry[],
): number {
  const put = new RowBatch(
    (sql) => work.stmt(sql),
    `INSERT INTO items (job, session, kind, stage, state, path, size, mtime_ns, mode, ino, dev,
       hash, created)`,
    13,
  );
  const now = new Date().toISOString();
  for (const e of files) {
    // TEXT columns take the bigints as decimal text, as in the listing.
    put.add(
      job,
      session,
      "ADD",
      Stage.content,
      "planned",
      e.path,
      e.size,
      e.mtimeNs,
      e.mode & 0o7777,
      e.ino,
      e.dev,
      "",
      now,
    );
  }
  put.flush();
  return files.length;
}

/**
 * Plans (inside the caller's transaction) an ADD for every local file the cloud lacks,
 * except the paths in `taken` (already a move target or an update), and an UPDATE against
 * the cloud's version for every file whose size, mtime or permission bits differ (a chmod
 * alone gives a delta of nothing but the new mode in its header). Straight from SQL to SQL:
 * a first backup of a million files never holds them in memory.
 */
export function planContent(
  work: WorkDb,
  job: number,
  session: string,
  taken: Iterable<string>,
  counts?: Pick<DiffCounts, "adds" | "changed">,
): { adds: number; updates: number } {
  work.db.exec("CREATE TEMP TABLE IF NOT EXISTS taken (path TEXT PRIMARY KEY)");
  work.db.exec("DELETE FROM temp.taken");
  const ins = work.stmt("INSERT OR IGNORE INTO temp.taken (path) VALUES (?)");
  for (const p of taken) ins.run(p);
  const now = new Date().toISOString();
  // Each pass reads the whole source listing: skip the ones the counts say find nothing.
  const updates = counts?.changed === 0 ? 0 : work.stmt(
    `INSERT INTO items (job, session, kind, stage, state, path, size, mtime_ns, mode, ino, dev,
       hash, base_version, base_hash, created)
     SELECT l.job, ?, 'UPDATE', 2, 'planned', l.path, l.size, l.mtime_ns, l.mode, l.ino, l.dev,
       '', c.version, c.hash, ?
     FROM local_files l JOIN cloud_files c ON c.job = l.job AND c.path = l.path
     WHERE l.job = ? AND (c.size != l.size OR c.mtime_ns != l.mtime_ns OR c.mode != l.mode)
     ORDER BY l.wkey`,
  ).run(session, now, job).changes;
  const adds = counts?.adds === 0 ? 0 : work.stmt(
    `INSERT INTO items (job, session, kind, stage, state, path, size, mtime_ns, mode, ino, dev,
       hash, created)
     SELECT l.job, ?, 'ADD', 2, 'planned', l.path, l.size, l.mtime_ns, l.mode, l.ino, l.dev, '', ?
     FROM local_files l
     WHERE l.job = ?
       AND NOT EXISTS (SELECT 1 FROM cloud_files c WHERE c.job = l.job AND c.path = l.path)
       AND NOT EXISTS (SELECT 1 FROM temp.taken t WHERE t.path = l.path)
     ORDER BY l.wkey`,
  ).run(session, now, job).changes;
  return { adds: Number(adds), updates: Number(updates) };
}
