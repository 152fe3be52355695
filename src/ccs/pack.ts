/**
 * Pack phase: turns planned work items into pack instruction files in Spool/Work.
 *
 * Each pack is written by the pack writer to a temp name and renamed when complete, and the
 * item turns `ready` only after that, so the dequeuer never sees half a pack. An UPDATE is a
 * delta against the cloud version's signature (local cache, else fetched); it becomes a
 * pack-add when there is no base or the delta is not smaller. A file that vanished or
 * changed while being packed is retried once, then reported and left for the next run.
 *
 * @module
 */
import { readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { errnoCode, messageOf, TransientError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { cncopVersion } from "../core/version.ts";
import { native } from "../native/mod.ts";
import type { NetworkClient } from "../network/client.ts";
import {
  packAdd,
  packDelete,
  packMove,
  packUpdate,
  type PackWritten,
  SourceChangedError,
} from "./pack_writer.ts";
import type { FileStates } from "./file_state.ts";
import { baseSignature, MIN_SIG_SIZE, writeSignature } from "./signature_cache.ts";
import type { WorkDb, WorkItem } from "./work_queue.ts";

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
}

/** Counts of the pack phase. */
export interface PackStats {
  packed: number;
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
  let sigFile: string | null = null;
  if (st.size >= MIN_SIG_SIZE) {
    await writeSignature(abs, sig);
    sigFile = sig;
  }
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
          return { w, sig: sigFile, kind: "UPDATE" };
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
  const hash = c.states.fromFork(f) ?? await native.blake3File(abs);
  const w = await packAdd(out, {
    ...common,
    source: abs,
    size: st.size,
    mtimeNs: st.mtimeNs,
    mode: st.mode,
    hash,
  });
  c.states.remember(f, hash);
  return { w, sig: sigFile, kind: "ADD" };
}

const programVersion = cncopVersion;

async function packOne(c: PackContext, item: WorkItem, s: PackStats): Promise<void> {
  const base = join(c.workDir, itemFileBase(c.job, item.id));
  const out = `${base}.pack`;
  const sig = `${base}.sig`;
  const common = { job: c.jobKey, path: item.path, program: "backupagentnq", programVersion };
  for (let attempt = 0;; attempt++) {
    try {
      if (item.kind === "MOVE") {
        const w = await packMove(out, { ...common, newPath: item.newPath!, folder: item.folder });
        c.work.markReady(item.id, out, w.bytes, null);
        s.moves++;
        s.packBytes += w.bytes;
      } else if (item.kind === "DELETE") {
        const w = await packDelete(out, { ...common, folder: item.folder });
        c.work.markReady(item.id, out, w.bytes, null);
        s.deletes++;
        s.packBytes += w.bytes;
      } else {
        const r = await packContent(c, item, out, sig, s);
        const h = r.w.header;
        c.work.db.prepare(
          `UPDATE items SET kind = ?, size = ?, mtime_ns = ?, mode = ?, hash = ?,
             base_version = ?, base_hash = ? WHERE id = ?`,
        ).run(
          r.kind,
          h.size,
          h.mtimeNs,
          h.mode,
          h.hash,
          h.base ?? null,
          h.baseHash ?? null,
          item.id,
        );
        c.work.markReady(item.id, out, r.w.bytes, r.sig);
        if (r.kind === "ADD") s.adds++;
        else s.updates++;
        s.packBytes += r.w.bytes;
      }
      s.packed++;
      return;
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
      return;
    }
  }
}

/** Packs every planned item of the job, lowest stage first, `parallel` at a time. */
export async function packPlanned(c: PackContext): Promise<PackStats> {
  const s: PackStats = {
    packed: 0,
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
  for (let stage = 0; stage <= 2; stage++) {
    let after = 0;
    for (;;) {
      const page = c.work.db.prepare(
        `SELECT id FROM items WHERE job = ? AND state = 'planned' AND stage = ? AND id > ?
         ORDER BY id LIMIT 512`,
      ).all(c.job, stage, after) as { id: number }[];
      if (page.length === 0) break;
      after = page[page.length - 1]!.id;
      let next = 0;
      const worker = async () => {
        while (next < page.length) {
          const item = c.work.item(page[next++]!.id);
          if (!item) continue;
          await packOne(c, item, s);
          c.onItem?.(++done);
        }
      };
      await Promise.all(Array.from({ length: parallel }, worker));
    }
  }
  return s;
}
