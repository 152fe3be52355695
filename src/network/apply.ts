/**
 * Applies a verified pack to a job: stores the content blob durably first, then commits
 * the catalog change in one transaction. A crash at any instant leaves the old version or
 * the new one; at worst an unreferenced blob, which `cncopd prune` removes.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { open, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { messageOf, PackRejectedError } from "../core/errors.ts";
import type { PackHeader } from "../ccs/pack_format.ts";
import { readPack } from "../ccs/pack_reader.ts";
import type { Catalog, JobRow } from "./catalog.ts";
import { loadNative } from "./native.ts";
import type { BlobStore } from "./storage.ts";

/** What applying a pack did. */
export interface ApplyResult {
  kind: PackHeader["kind"];
  path: string;
  newPath?: string;
  /** The new version id (add, update, single-file move). */
  version?: number;
  /** How many paths changed. */
  changed: number;
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
export function applyPack(
  ctx: ApplyContext,
  deviceId: number,
  job: JobRow,
  packPath: string,
): Promise<ApplyResult> {
  return serialized(job.id, () => applyNow(ctx, deviceId, job, packPath));
}

async function applyNow(
  ctx: ApplyContext,
  deviceId: number,
  job: JobRow,
  packPath: string,
): Promise<ApplyResult> {
  const { catalog, blobs } = ctx;
  const tmpId = randomBytes(12).toString("hex");
  const body = join(blobs.tmpDir, `${tmpId}.body`);
  const patched = join(blobs.tmpDir, `${tmpId}.new`);
  try {
    const header = await readPack(packPath, { bodyTo: body, maxBodySize: ctx.maxBodySize });
    if (header.job !== job.job_key) {
      throw new PackRejectedError(
        `pack is for job ${JSON.stringify(header.job)}, not ${JSON.stringify(job.job_key)}`,
      );
    }
    const sha = await trailerOf(packPath);
    const done = catalog.appliedPack(job.id, sha);
    if (done !== undefined) return JSON.parse(done) as ApplyResult;

    const meta = {
      path: header.path,
      size: header.size,
      mtimeNs: header.mtimeNs,
      mode: header.mode,
      hash: header.hash,
    };
    let result: ApplyResult;
    switch (header.kind) {
      case "add": {
        await blobs.put(deviceId, header.hash, body);
        result = catalog.tx(() => {
          const version = catalog.putVersion(job.id, meta, catalog.now());
          const r: ApplyResult = { kind: "add", path: header.path, version, changed: 1 };
          catalog.recordPack(job.id, sha, JSON.stringify(r));
          return r;
        });
        break;
      }
      case "update": {
        const base = catalog.version(job.id, header.base!);
        if (!base) {
          throw new PackRejectedError(`base version ${header.base} does not exist in this job`);
        }
        if (header.baseHash !== undefined && header.baseHash !== base.hash) {
          throw new PackRejectedError(
            `base version ${header.base} has other content than the delta's base`,
          );
        }
        const native = await loadNative();
        const local = await blobs.localPath(deviceId, base.hash);
        try {
          await native.patch(local.path, body, patched, header.hash);
        } catch (err) {
          throw new PackRejectedError(`delta does not apply: ${messageOf(err)}`, { cause: err });
        } finally {
          await local.release();
        }
        if ((await stat(patched)).size !== header.size) {
          throw new PackRejectedError("patched content has another size than the header says");
        }
        await blobs.put(deviceId, header.hash, patched);
        result = catalog.tx(() => {
          const version = catalog.putVersion(job.id, meta, catalog.now());
          const r: ApplyResult = { kind: "update", path: header.path, version, changed: 1 };
          catalog.recordPack(job.id, sha, JSON.stringify(r));
          return r;
        });
        break;
      }
      case "move": {
        const from = header.path;
        const to = header.newPath!;
        if (header.folder && (to === from || to.startsWith(from + "/"))) {
          throw new PackRejectedError(`cannot move folder ${from} into itself`);
        }
        result = catalog.tx(() => {
          const rows = catalog.currentUnder(job.id, from, header.folder === true);
          if (rows.length === 0) {
            throw new PackRejectedError(`nothing to move at ${JSON.stringify(from)}`);
          }
          const at = catalog.now();
          let version: number | undefined;
          for (const row of rows) {
            catalog.endVersion(row.id, at, true);
            const dest = header.folder ? to + row.path.slice(from.length) : to;
            version = catalog.putVersion(job.id, {
              path: dest,
              size: row.size,
              mtimeNs: row.mtime_ns,
              mode: row.mode,
              hash: row.hash,
            }, at);
          }
          const r: ApplyResult = { kind: "move", path: from, newPath: to, changed: rows.length };
          if (!header.folder) r.version = version;
          catalog.recordPack(job.id, sha, JSON.stringify(r));
          return r;
        });
        break;
      }
      case "delete": {
        result = catalog.tx(() => {
          const rows = catalog.currentUnder(job.id, header.path, header.folder === true);
          const at = catalog.now();
          for (const row of rows) catalog.endVersion(row.id, at, true);
          const r: ApplyResult = { kind: "delete", path: header.path, changed: rows.length };
          catalog.recordPack(job.id, sha, JSON.stringify(r));
          return r;
        });
        break;
      }
      default:
        throw new PackRejectedError("unknown pack kind");
    }
    return result;
  } finally {
    await rm(body, { force: true });
    await rm(patched, { force: true });
  }
}
