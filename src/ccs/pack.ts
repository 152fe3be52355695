/**
 * Pack phase: turns planned work items into pack instruction files in Spool/Work.
 *
 * Moves, deletes and small files share packs (many entries each); large files and updates
 * get a pack each, streamed. Each pack is written to a temp name and renamed when complete,
 * and its items turn `ready` only after that, so the dequeuer never sees half a pack. An UPDATE is a
 * delta against the cloud version's signature (local cache, else fetched); it becomes a
 * pack-add when there is no base or the delta is not smaller. A file that vanished or
 * changed while being packed is retried once, then reported and left for the next run.
 *
 * @module
 */
import { readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { CncopError, errnoCode, messageOf, TransientError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { releaseMemory } from "../core/memory.ts";
import { cncopVersion } from "../core/version.ts";
import { type FileForPack, native, type PackForks } from "../native/mod.ts";
import type { NetworkClient } from "../network/client.ts";
import { checkPackPath, type PackHeader } from "./pack_format.ts";
import {
  baseHeader,
  DEFAULT_LEVEL,
  packAdd,
  PackBuilder,
  packUpdate,
  type PackWritten,
  SourceChangedError,
} from "./pack_writer.ts";
import { type FileStates, FORK_NAME } from "./file_state.ts";
import { baseSignature, MIN_SIG_SIZE, writeSignature } from "./signature_cache.ts";
import type { PlanFeed } from "./plan_feed.ts";
import { type ItemKind, Stage, type WorkDb, type WorkItem } from "./work_queue.ts";

/** What the pack phase needs. */
export interface PackContext {
  work: WorkDb;
  workDir: string;
  job: number;
  /** The job's key on the network. */
  jobKey: string;
  root: string;
  client: NetworkClient | undefined;
  states: FileStates;
  log: Logger;
  suppressMissing: boolean;
  /** Packs written at once. @default 4 */
  parallel?: number;
  /** Called after each item, for progress. */
  onItem?: (done: number) => void;
  /**
   * Items still being planned (a first backup's walk): the content stage waits for more
   * until planning has ended, instead of ending at the first empty page.
   */
  feed?: PlanFeed;
}

/** Counts of the pack phase. */
export interface PackStats {
  /** Items packed. */
  packed: number;
  /** Pack files written. */
  packFiles: number;
  packBytes: number;
  adds: number;
  updates: number;
  deltas: number;
  /** Updates sent whole (no base, or the delta was not smaller). */
  deltaFallbacks: number;
  moves: number;
  deletes: number;
  missing: number;
  changed: number;
  failed: number;
}

/** Base name of the files of item `id` of `job` in Spool/Work. */
export function itemFileBase(job: number, id: number): string {
  return `J${job}-${String(id).padStart(9, "0")}`;
}

/**
 * Removes files of `job` in `workDir` that no item refers to: temp files of a killed
 * enqueuer, packs whose item a dequeuer finished just before it died.
 */
export function removeStrayFiles(work: WorkDb, workDir: string, job: number): number {
  const keep = new Set<string>();
  for (const i of work.items(job)) {
    if (i.pack) keep.add(i.pack);
    if (i.sig) keep.add(i.sig);
  }
  let n = 0;
  for (const name of readdirSync(workDir)) {
    if (!name.startsWith(`J${job}-`)) continue;
    const p = join(workDir, name);
    if (keep.has(p)) continue;
    rmSync(p, { force: true });
    n++;
  }
  return n;
}

class Missing extends Error {}

function statOf(abs: string): { size: number; mtimeNs: string; mode: number } | undefined {
  try {
    const st = statSync(abs, { bigint: true });
    if (!st.isFile()) return undefined;
    return { size: Number(st.size), mtimeNs: String(st.mtimeNs), mode: Number(st.mode) & 0o7777 };
  } catch (err) {
    if (errnoCode(err) === "ENOENT" || errnoCode(err) === "ENOTDIR") return undefined;
    throw err;
  }
}

async function packContent(
  c: PackContext,
  item: WorkItem,
  out: string,
  sig: string,
  s: PackStats,
): Promise<{ w: PackWritten; sig: string | null; kind: "ADD" | "UPDATE" }> {
  const abs = join(c.root, item.path);
  const st = statOf(abs);
  if (!st) throw new Missing(item.path);
  if (st.size !== item.size || st.mtimeNs !== item.mtimeNs) {
    throw new SourceChangedError(`${item.path} changed since the peek`);
  }
  const common = { job: c.jobKey, path: item.path, program: "backupagentnq", programVersion };
  // Files this large get their own signature: for an add from the same read as its pack.
  const wantSig = st.size >= MIN_SIG_SIZE;
  if (item.kind === "UPDATE" && item.baseVersion !== null && item.baseHash) {
    const base = await baseSignature(
      c.workDir,
      c.client,
      c.jobKey,
      item.baseVersion,
      item.baseHash,
    );
    if (base) {
      const deltaPath = `${out}.delta`;
      try {
        const d = await native.delta(base.path, abs, deltaPath);
        const after = statOf(abs);
        if (!after || after.size !== st.size || after.mtimeNs !== st.mtimeNs) {
          throw new SourceChangedError(`${item.path} changed while it was packed`);
        }
        if (d.deltaSize < d.newSize * 0.9 || d.newSize === 0) {
          if (wantSig) await writeSignature(abs, sig);
          const w = await packUpdate(out, {
            ...common,
            deltaPath,
            base: item.baseVersion,
            baseHash: item.baseHash,
            size: d.newSize,
            hash: d.newBlake3,
            mtimeNs: st.mtimeNs,
            mode: st.mode,
          });
          s.deltas++;
          c.states.remember(
            { path: item.path, abs, size: st.size, mtimeNs: st.mtimeNs },
            d.newBlake3,
          );
          return { w, sig: wantSig ? sig : null, kind: "UPDATE" };
        }
      } finally {
        rmSync(deltaPath, { force: true });
      }
    }
    s.deltaFallbacks++;
  }
  const f = {
    path: item.path,
    abs,
    size: st.size,
    mtimeNs: st.mtimeNs,
    ino: item.ino,
    dev: item.dev,
  };
  // Hashed as it is packed: a known hash (a fork's) would only save a check.
  const w = await packAdd(out, {
    ...common,
    source: abs,
    size: st.size,
    mtimeNs: st.mtimeNs,
    mode: st.mode,
    ...(wantSig ? { sig } : {}),
  });
  c.states.remember(f, w.header.hash);
  return { w, sig: wantSig ? sig : null, kind: "ADD" };
}

const programVersion = cncopVersion;

/** A shared pack is closed once its bodies reach this many bytes... */
const PACK_TARGET_BYTES = 16 * 1024 * 1024;
/** ...or this many entries. */
const PACK_TARGET_ENTRIES = 4000;
/** Small files read, hashed and compressed per call to the native core. */
const READ_BATCH = 64;

/**
 * An entry for a shared pack. Files below {@link MIN_SIG_SIZE} share packs: they are read
 * whole, and get no signature of their own.
 */
interface Prepared {
  item: WorkItem;
  header: PackHeader;
  /** A small file to read, with the size and mtime it must still have. */
  read?: { abs: string; size: number; mtimeNs: string; mode: number };
  /** Its body once read, encoded as `header.compression` says. */
  frame?: Uint8Array;
  sig: string | null;
  kind: ItemKind;
}

/** The shared pack being filled, and the items in it. */
interface OpenPack {
  builder: PackBuilder;
  entries: Prepared[];
}

/**
 * Asks a read batch to keep the files' states in their forks, when the job uses forks: the
 * native core writes each while the file is open, on its pool (by path on the JS thread,
 * one system call per file took a first backup of the Linux tree a second).
 */
function forksOf(c: PackContext, listed: { mtimeNs: string }[]): PackForks | undefined {
  if (!c.states.forks) return undefined;
  return { name: FORK_NAME, mtimesNs: listed.map((r) => r.mtimeNs) };
}

/** Fills a small add's header and body from its read; false when the file changed. */
function fillFromRead(c: PackContext, p: Prepared, r: FileForPack): boolean {
  const want = p.read!;
  if (r.error !== "" || r.size !== want.size || r.mtimeNs !== want.mtimeNs) return false;
  Object.assign(p.header, {
    size: r.size,
    bodySize: r.size,
    hash: r.blake3,
    mtimeNs: want.mtimeNs,
    mode: want.mode,
    compression: r.compressed ? "zstd" : "none",
  });
  p.frame = r.data;
  const f = {
    path: p.item.path,
    abs: want.abs,
    size: r.size,
    mtimeNs: want.mtimeNs,
    ino: p.item.ino,
    dev: p.item.dev,
  };
  if (!r.forked) c.states.remember(f, r.blake3); // not written by the read (or could not be)
  return true;
}

/**
 * Prepares one item: a move, a delete or a small add becomes an entry for the shared
 * pack; a large file or an update gets a pack of its own here (streamed) and is ready on
 * return. Undefined when the item is done or dropped. A file that vanished or changed is
 * retried once, then reported and left for the next run.
 */
async function prepareOne(
  c: PackContext,
  item: WorkItem,
  s: PackStats,
  direct = false,
): Promise<Prepared | undefined> {
  const base = join(c.workDir, itemFileBase(c.job, item.id));
  const out = `${base}.pack`;
  const sig = `${base}.sig`;
  const common = { job: c.jobKey, path: item.path, program: "backupagentnq", programVersion };
  for (let attempt = 0;; attempt++) {
    try {
      // A name the pack format refuses fails this item alone, not the pack it would join.
      checkPackPath(item.path);
      if (item.newPath !== null) checkPackPath(item.newPath, "newPath");
      if (item.kind === "MOVE") {
        const header = baseHeader("move", common);
        header.newPath = item.newPath!;
        if (item.folder) header.folder = true;
        return { item, header, sig: null, kind: "MOVE" };
      }
      if (item.kind === "DELETE") {
        const header = baseHeader("delete", common);
        if (item.folder) header.folder = true;
        return { item, header, sig: null, kind: "DELETE" };
      }
      const abs = join(c.root, item.path);
      const small = (size: number) => item.kind === "ADD" && size < MIN_SIG_SIZE;
      if (small(item.size) && !direct && attempt === 0) {
        // Read later with its batch, on every core (readFilesForPack), which also checks
        // the file is still what the peek listed: no stat here.
        const read = { abs, size: item.size, mtimeNs: item.mtimeNs, mode: item.mode & 0o7777 };
        return { item, header: baseHeader("add", common), read, sig: null, kind: "ADD" };
      }
      const st = statOf(abs);
      if (!st) throw new Missing(item.path);
      if (st.size !== item.size || st.mtimeNs !== item.mtimeNs) {
        throw new SourceChangedError(`${item.path} changed since the peek`);
      }
      if (small(st.size)) {
        // Again, alone (its batch found it changed or gone): read it now.
        const p: Prepared = {
          item,
          header: baseHeader("add", common),
          read: { abs, ...st },
          sig: null,
          kind: "ADD",
        };
        const [r] = await native.readFilesForPack(
          [abs],
          DEFAULT_LEVEL,
          [st.size],
          forksOf(c, [st]),
        );
        if (r!.error.startsWith("ENOENT")) throw new Missing(item.path);
        if (r!.error !== "") throw new CncopError(`${item.path}: ${r!.error}`);
        if (!fillFromRead(c, p, r!)) {
          throw new SourceChangedError(`${item.path} changed while it was packed`);
        }
        return p;
      }
      const r = await packContent(c, item, out, sig, s);
      const h = r.w.header;
      c.work.markPacked(item.id, r.kind, h, out, r.w.bytes, r.sig);
      if (r.kind === "ADD") s.adds++;
      else s.updates++;
      s.packBytes += r.w.bytes;
      s.packed++;
      s.packFiles++;
      return undefined;
    } catch (err) {
      rmSync(out, { force: true });
      rmSync(sig, { force: true });
      if (err instanceof TransientError) throw err;
      const vanished = err instanceof Missing || errnoCode(err) === "ENOENT";
      const changed = err instanceof SourceChangedError;
      if ((vanished || changed) && attempt === 0) {
        // Retry once with the file as it is now.
        const st = statOf(join(c.root, item.path));
        if (st) {
          item = { ...item, size: st.size, mtimeNs: st.mtimeNs, mode: st.mode };
          continue;
        }
      }
      c.work.removeItems([item.id]);
      c.work.invalidatePeekState(c.job);
      if (vanished) {
        s.missing++;
        if (!c.suppressMissing) {
          c.log.warn(`PACK-MISSING ${item.path}: vanished before it was packed`);
        }
      } else if (changed) {
        s.changed++;
        c.log.warn(`PACK-CHANGED ${item.path}: still changing; it is packed on the next run`);
      } else {
        s.failed++;
        c.log.error(`PACK-FAILED ${item.path}: ${messageOf(err)}`);
      }
      return undefined;
    }
  }
}

/**
 * Reads, hashes and compresses a batch's small files off the JS thread, on every core, and
 * fills their entries. Returns, per entry, whether it must be prepared again (changed or
 * gone meanwhile).
 */
async function readBatch(c: PackContext, entries: Prepared[]): Promise<boolean[]> {
  const reads = entries.flatMap((p, i) => (p.read && !p.frame ? [i] : []));
  const again = entries.map(() => false);
  if (reads.length === 0) return again;
  const listed = reads.map((i) => entries[i]!.read!);
  const files = await native.readFilesForPack(
    listed.map((r) => r.abs),
    DEFAULT_LEVEL,
    listed.map((r) => r.size),
    forksOf(c, listed),
  );
  reads.forEach((i, k) => (again[i] = !fillFromRead(c, entries[i]!, files[k]!)));
  return again;
}

/** Completes a shared pack and marks its items ready, in one transaction. */
async function closePack(c: PackContext, open: OpenPack, s: PackStats): Promise<void> {
  const w = await open.builder.finish();
  c.work.markPackReady(
    w.path,
    w.bytes,
    open.entries.map((p, i) => ({
      item: p.item,
      kind: p.kind,
      header: p.kind === "ADD" || p.kind === "UPDATE" ? w.headers[i]! : undefined,
      sig: p.sig,
    })),
  );
  for (const p of open.entries) {
    if (p.kind === "ADD") s.adds++;
    else if (p.kind === "UPDATE") s.updates++;
    else if (p.kind === "MOVE") s.moves++;
    else s.deletes++;
  }
  s.packed += open.entries.length;
  s.packFiles++;
  s.packBytes += w.bytes;
  releaseMemory(native); // the pack's buffers are free now: give them back
}

/**
 * Packs every planned item of the job, lowest stage first: `parallel` workers read and
 * hash, and one writer fills shared packs of up to 16 MB or 4,000 entries, so the
 * dequeuer and the network handle a few packs, not one per file.
 */
export async function packPlanned(c: PackContext): Promise<PackStats> {
  const s: PackStats = {
    packed: 0,
    packFiles: 0,
    packBytes: 0,
    adds: 0,
    updates: 0,
    deltas: 0,
    deltaFallbacks: 0,
    moves: 0,
    deletes: 0,
    missing: 0,
    changed: 0,
    failed: 0,
  };
  const parallel = Math.max(1, c.parallel ?? 4);
  let done = 0;
  let open: OpenPack | undefined;
  // Prepared entries gather in batches; a batch's small files are read and compressed at
  // once off the JS thread (on both cores) while the workers go on, then one writer appends
  // batches in order.
  let writer: Promise<void> = Promise.resolve();
  let batch: Prepared[] = [];
  let batchBytes = 0;
  let inflightBytes = 0;
  let inflightEntries = 0;
  // The batches not written yet, oldest first.
  const unwritten: Promise<void>[] = [];
  // Full packs being finished.
  let closes: Promise<void>[] = [];
  const closed = async () => {
    const all = closes;
    closes = [];
    // Every one has ended (none goes on after a failure), then the first failure is thrown.
    const failed = (await Promise.allSettled(all)).find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
  };
  const addAll = async (entries: Prepared[], again: boolean[]) => {
    for (let [i, p] of entries.entries()) {
      if (again[i]) {
        const retried = await prepareOne(c, p.item, s, true); // retries once, or reports
        if (!retried) continue;
        p = retried;
      }
      if (!open) {
        const name = `${join(c.workDir, itemFileBase(c.job, p.item.id))}.pack`;
        open = { builder: await PackBuilder.create(name), entries: [] };
      }
      await open.builder.addEncoded(p.header, p.frame);
      p.frame = undefined; // in the pack now: a pack being finished does not hold its bodies
      open.entries.push(p);
      if (
        open.builder.bodyBytes >= PACK_TARGET_BYTES ||
        open.entries.length >= PACK_TARGET_ENTRIES
      ) {
        // Finished (its fsyncs and rename) while the next pack fills: the writer does not
        // wait for the disk.
        const full = open;
        open = undefined;
        const closing = closePack(c, full, s);
        closing.catch(() => {}); // awaited with the stage
        closes.push(closing);
        // A slow disk: a few packs wait for it at most, not every pack of the run.
        while (closes.length > 2) await closes.shift();
      }
    }
  };
  const flushBatch = () => {
    if (batch.length === 0) return writer;
    const entries = batch;
    const bytes = batchBytes;
    batch = [];
    batchBytes = 0;
    inflightBytes += bytes;
    inflightEntries += entries.length;
    const read = readBatch(c, entries);
    read.catch(() => {}); // reported through the writer
    writer = writer.then(async () => {
      try {
        await addAll(entries, await read);
      } finally {
        inflightBytes -= bytes;
        inflightEntries -= entries.length;
        unwritten.shift(); // this batch: batches are written in order
      }
    });
    writer.catch(() => {}); // handled: a failure surfaces where the writer is awaited
    unwritten.push(writer);
    return writer;
  };
  const append = async (p: Prepared) => {
    batch.push(p);
    batchBytes += p.read?.size ?? 0;
    if (batch.length >= READ_BATCH || batchBytes >= 4 << 20) flushBatch();
    // Bounded memory: what waits to be read, compressed and written stays under 16 MB of
    // file contents and 2,048 entries (a million tiny files add up too). Only as many of the
    // oldest batches as it takes are awaited: waiting for all of them let the native core's
    // threads run dry while the last ones were written, at every bound.
    while ((inflightBytes >= 16 << 20 || inflightEntries >= 2048) && unwritten.length > 0) {
      await unwritten[0];
    }
  };
  try {
    for (let stage = 0; stage <= 2; stage++) {
      let after = 0;
      for (;;) {
        c.feed?.check(); // planning failed: stop here, not once the backlog is packed
        const page = c.work.planned(c.job, stage, after, 512);
        if (page.length === 0) {
          if (stage !== Stage.content || !c.feed || c.feed.ended) break;
          // Caught up with the walk: what waits in the batch is read meanwhile.
          void flushBatch();
          await c.feed.wait();
          continue;
        }
        after = page[page.length - 1]!.id;
        let next = 0;
        let failure: { err: unknown } | undefined;
        const worker = async () => {
          while (next < page.length && !failure) {
            const item = page[next++]!;
            const p = await prepareOne(c, item, s);
            if (p) await append(p);
            c.onItem?.(++done);
          }
        };
        // The first failure stops the other workers; it is thrown once all have stopped, so
        // none adds to a pack after it was aborted.
        const guarded = () => worker().catch((err) => void (failure ??= { err }));
        await Promise.all(Array.from({ length: parallel }, guarded));
        if (failure) throw failure.err;
      }
      // A stage's packs are complete before the next stage's begin (the dequeuer sends
      // stage by stage).
      await flushBatch();
      if (open) {
        const last: OpenPack = open;
        open = undefined;
        await closePack(c, last, s);
      }
      await closed();
    }
  } catch (err) {
    await writer.catch(() => {});
    await Promise.allSettled(closes);
    const o = open as OpenPack | undefined;
    if (o) await o.builder.abort();
    throw err;
  }
  return s;
}
