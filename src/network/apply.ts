/**
 * Applies a verified pack to a job: stores the content blobs of all its entries durably
 * first, then commits every entry's catalog change in one transaction. A crash at any instant leaves the old version or
 * the new one; at worst an unreferenced blob, which `cncopd prune` removes.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { open, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { messageOf, PackRejectedError } from "../core/errors.ts";
import type { PackHeader } from "../ccs/pack_format.ts";
import { readPackEntries } from "../ccs/pack_reader.ts";
import type { Catalog, JobRow } from "./catalog.ts";
import { loadNative } from "./native.ts";
import { type PackedBlob, SMALL_BLOB_MAX } from "./small_blobs.ts";
import type { BlobStore, KeptPack } from "./storage.ts";
import { releaseMemory } from "../core/memory.ts";

/** What applying one entry of a pack did. */
export interface EntryResult {
  kind: PackHeader["kind"];
  path: string;
  newPath?: string;
  /** The new version id (add, update, single-file move). */
  version?: number;
  /**
   * A folder move's new version ids, first and last: consecutive, given to the moved files
   * in the byte order of their old paths.
   */
  versions?: [number, number];
  /** How many paths changed. */
  changed: number;
}

/**
 * What applying a pack did: the first entry's result, `changed` summed over all entries,
 * and every entry's result in pack order.
 */
export interface ApplyResult extends EntryResult {
  entries: EntryResult[];
  /** The job's listing tags before and after this pack (see `Catalog.listingTag`). */
  listing?: { before: string; after: string };
}

/** What applying needs. */
export interface ApplyContext {
  catalog: Catalog;
  blobs: BlobStore;
  /** Largest declared body accepted. */
  maxBodySize: number;
}

const locks = new Map<number, Promise<unknown>>();

/** Runs `fn` after every earlier call for the same job has ended. */
function serialized<T>(jobId: number, fn: () => Promise<T>): Promise<T> {
  const prev = locks.get(jobId) ?? Promise.resolve();
  const next = prev.then(fn, fn);
  const tail = next.catch(() => {});
  locks.set(jobId, tail);
  void tail.then(() => {
    if (locks.get(jobId) === tail) locks.delete(jobId);
  });
  return next;
}

async function trailerOf(packPath: string): Promise<string> {
  const fh = await open(packPath, "r");
  try {
    const { size } = await fh.stat();
    const buf = Buffer.alloc(32);
    await fh.read(buf, 0, 32, Math.max(0, size - 32));
    return buf.toString("hex");
  } finally {
    await fh.close();
  }
}

/**
 * Verifies and applies the pack file at `packPath` to `job` (owned by `deviceId`).
 * Applying the same pack twice returns the first result and changes nothing.
 *
 * @throws {PackRejectedError} when the pack is invalid or does not fit the catalog; nothing
 * stored changes then.
 */
export async function applyPack(
  ctx: ApplyContext,
  deviceId: number,
  job: JobRow,
  packPath: string,
): Promise<ApplyResult> {
  const { catalog, blobs } = ctx;
  const sha = await trailerOf(packPath);
  const done = catalog.appliedPack(job.id, sha);
  if (done !== undefined) return JSON.parse(done) as ApplyResult;
  const native = await loadNative();
  const tmpPrefix = randomBytes(12).toString("hex");
  const tmpBase = join(blobs.tmpDir, tmpPrefix);
  const bodyOf = (i: number) => `${tmpBase}-${i}.body`;
  const frames: PackedBlob[] = [];
  let frameBudget = 64 * 1024 * 1024;
  try {
    // Reading and verifying needs nothing of the catalog: packs of one job are verified
    // side by side, and only what changes the catalog runs one pack after the other.
    const headers = await readPackEntries(packPath, {
      bodyTo: (h, i) => (h.kind === "add" || h.kind === "update" ? bodyOf(i) : undefined),
      maxBodySize: ctx.maxBodySize,
      frames: {
        // Small bodies stay where they are: the pack is kept as their container. At most
        // 64 MB of them per pack wait in memory for their check, the rest go to body files
        // (a client's packs hold 16 MB; a hostile one could hold more).
        wants: (h) => h.size <= SMALL_BLOB_MAX && (frameBudget -= h.bodySize) >= 0,
        take: (h, _i, at) =>
          frames.push({ hash: h.hash, size: h.size, compression: h.compression, ...at }),
      },
      blake3: native.blake3,
      sync: false, // putMany() and putPacked() make what is kept durable, all at once
    });
    if (headers[0]!.job !== job.job_key) {
      throw new PackRejectedError(
        `pack is for job ${JSON.stringify(headers[0]!.job)}, not ${JSON.stringify(job.job_key)}`,
      );
    }
    const kept = { path: packPath, sha256: sha };
    const result = await serialized(
      job.id,
      () => commit(ctx, deviceId, job, kept, headers, frames, tmpBase),
    );
    releaseMemory(native); // the pack's frames are stored: give their memory back
    return result;
  } finally {
    // Only what may still exist: bodies not consumed by putMany, patched contents. One
    // listing of tmp/ (small bodies never reach it) costs less than a removal per entry.
    for (const f of await readdir(blobs.tmpDir).catch(() => [] as string[])) {
      if (f.startsWith(tmpPrefix)) await rm(join(blobs.tmpDir, f), { force: true });
    }
  }
}

/**
 * Applies a verified pack: contents first (patched, durable), then one catalog transaction.
 * Runs one pack of a job at a time.
 */
async function commit(
  ctx: ApplyContext,
  deviceId: number,
  job: JobRow,
  kept: KeptPack,
  headers: PackHeader[],
  frames: PackedBlob[],
  tmpBase: string,
): Promise<ApplyResult> {
  const { catalog, blobs } = ctx;
  const sha = kept.sha256;
  // The same pack may have been applied while this one was verified (a resent upload).
  const done = catalog.appliedPack(job.id, sha);
  if (done !== undefined) return JSON.parse(done) as ApplyResult;
  const contents: { hash: string; file: string }[] = [];
  const small = new Set(frames.map((f) => f.hash));
  for (const [i, header] of headers.entries()) {
    if (header.kind === "add") {
      if (!small.has(header.hash)) {
        contents.push({ hash: header.hash, file: `${tmpBase}-${i}.body` });
      }
    } else if (header.kind === "update") {
      const patched = `${tmpBase}-${i}.new`;
      await patchEntry(ctx, deviceId, job, header, `${tmpBase}-${i}.body`, patched);
      contents.push({ hash: header.hash, file: patched });
    }
  }
  await blobs.putPacked(deviceId, kept, frames);
  await blobs.putMany(deviceId, contents);
  return catalog.tx(() => {
    const at = catalog.now();
    const entries = headers.map((h) => applyEntry(catalog, job, h, at));
    const r: ApplyResult = {
      ...entries[0]!,
      changed: entries.reduce((n, e) => n + e.changed, 0),
      entries,
      listing: catalog.renewListingTag(job.id),
    };
    catalog.recordPack(job.id, sha, JSON.stringify(r));
    return r;
  });
}

/** Rebuilds an update's content from its base and delta into `patched`. */
async function patchEntry(
  ctx: ApplyContext,
  deviceId: number,
  job: JobRow,
  header: PackHeader,
  delta: string,
  patched: string,
): Promise<void> {
  const base = ctx.catalog.version(job.id, header.base!);
  if (!base) {
    throw new PackRejectedError(`base version ${header.base} does not exist in this job`);
  }
  if (header.baseHash !== undefined && header.baseHash !== base.hash) {
    throw new PackRejectedError(
      `base version ${header.base} has other content than the delta's base`,
    );
  }
  const native = await loadNative();
  const local = await ctx.blobs.localPath(deviceId, base.hash);
  try {
    await native.patch(local.path, delta, patched, header.hash);
  } catch (err) {
    throw new PackRejectedError(`delta does not apply: ${messageOf(err)}`, { cause: err });
  } finally {
    await local.release();
  }
  if ((await stat(patched)).size !== header.size) {
    throw new PackRejectedError("patched content has another size than the header says");
  }
}

/** Applies one entry to the catalog (inside the pack's transaction). */
function applyEntry(catalog: Catalog, job: JobRow, header: PackHeader, at: number): EntryResult {
  switch (header.kind) {
    case "add":
    case "update": {
      const version = catalog.putVersion(job.id, {
        path: header.path,
        size: header.size,
        mtimeNs: header.mtimeNs,
        mode: header.mode,
        hash: header.hash,
      }, at);
      return { kind: header.kind, path: header.path, version, changed: 1 };
    }
    case "move": {
      const from = header.path;
      const to = header.newPath!;
      if (header.folder && (to === from || to.startsWith(from + "/"))) {
        throw new PackRejectedError(`cannot move folder ${from} into itself`);
      }
      if (header.folder) {
        const ids = catalog.moveFolder(job.id, from, to, at);
        if (!ids) throw new PackRejectedError(`nothing to move at ${JSON.stringify(from)}`);
        const changed = ids[1] - ids[0] + 1;
        return { kind: "move", path: from, newPath: to, changed, versions: ids };
      }
      const row = catalog.current(job.id, from);
      if (!row) throw new PackRejectedError(`nothing to move at ${JSON.stringify(from)}`);
      catalog.endVersion(row.id, at, true);
      const version = catalog.putVersion(job.id, {
        path: to,
        size: row.size,
        mtimeNs: row.mtime_ns,
        mode: row.mode,
        hash: row.hash,
      }, at);
      return { kind: "move", path: from, newPath: to, changed: 1, version };
    }
    case "delete": {
      if (header.folder) {
        const changed = catalog.deleteFolder(job.id, header.path, at);
        return { kind: "delete", path: header.path, changed };
      }
      const row = catalog.current(job.id, header.path);
      if (row) catalog.endVersion(row.id, at, true);
      return { kind: "delete", path: header.path, changed: row ? 1 : 0 };
    }
    default:
      throw new PackRejectedError("unknown pack kind");
  }
}
