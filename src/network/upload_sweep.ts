/**
 * Expiry of abandoned uploads: a client that never came back leaves an open upload row and
 * its `uploads/<job>/<name>.part`. Once nothing was appended for the expiry age (default 7
 * days; `cncopd serve|prune --upload-expiry`), both are removed, by the server at start and
 * every hour and by `cncopd prune`. A part file no open upload owns (a crash between
 * applying and removing it) goes after the same age.
 *
 * An upload's last activity is its part file's mtime (every appended chunk touches it), else
 * the time it was created. The server skips an upload a request is appending to right now
 * (`Uploads.claim`); `cncopd prune`, a separate process, relies on the age alone and removes
 * the row before the file, so a client resuming at that instant gets 404 and starts afresh.
 * Nothing stored is at stake: an upload is only bytes not yet applied, and the client keeps
 * its pack until the network confirmed it.
 *
 * @module
 */
import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { errnoCode } from "../core/errors.ts";
import { UsageError } from "../core/errors.ts";
import type { Catalog } from "./catalog.ts";

/** The default age after which an untouched upload is abandoned: 7 days. */
export const DEFAULT_UPLOAD_EXPIRY_MS = 7 * 86400_000;

/** How often a running server sweeps: hourly. */
export const UPLOAD_SWEEP_INTERVAL_MS = 3600_000;

/** What a sweep removed. */
export interface SweepResult {
  /** Open uploads expired (row and part file). */
  uploads: number;
  /** Part files no open upload owned. */
  orphans: number;
  /** Bytes of part files removed. */
  bytes: number;
}

/** Exclusive access to an upload while it is removed; absent in another process. */
export interface UploadClaims {
  claim(jobId: number, id: string): boolean;
  release(jobId: number, id: string): void;
}

/** Parses an age: `90s`, `30m`, `12h`, `7d`, or plain seconds. */
export function parseAge(option: string, value: string, minMs = 0): number {
  const m = /^(\d+)([smhd]?)$/.exec(value.trim());
  if (!m) {
    throw new UsageError(
      `${option} must be an age like 7d, 12h or 90m, not ${JSON.stringify(value)}`,
    );
  }
  const unit = { "": 1000, s: 1000, m: 60_000, h: 3600_000, d: 86400_000 }[m[2]!]!;
  const ms = Number(m[1]) * unit;
  if (ms < minMs) {
    throw new UsageError(
      `${option} must be at least ${minMs / 60_000}m, not ${JSON.stringify(value)}` +
        " (a shorter age would remove uploads a client is still sending)",
    );
  }
  return ms;
}

async function mtimeOf(path: string): Promise<{ mtimeMs: number; size: number } | undefined> {
  try {
    const st = await stat(path);
    return { mtimeMs: st.mtimeMs, size: st.size };
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return undefined;
    throw err;
  }
}

/**
 * Removes uploads untouched since before `now - expiryMs`, and part files no open upload
 * owns that are as old.
 */
export async function sweepUploads(
  dataDir: string,
  catalog: Catalog,
  options: { expiryMs?: number; now?: number; claims?: UploadClaims } = {},
): Promise<SweepResult> {
  const before = (options.now ?? Date.now()) - (options.expiryMs ?? DEFAULT_UPLOAD_EXPIRY_MS);
  const claims = options.claims;
  const dir = join(dataDir, "uploads");
  const partOf = (jobId: number, id: string) => join(dir, String(jobId), `${id}.part`);
  const r: SweepResult = { uploads: 0, orphans: 0, bytes: 0 };

  for (const u of catalog.openUploads()) {
    const part = partOf(u.job_id, u.upload_key);
    const seen = await mtimeOf(part);
    if ((seen?.mtimeMs ?? u.created_at) >= before) continue;
    if (claims && !claims.claim(u.job_id, u.upload_key)) continue; // being appended to now
    try {
      // Again under the claim: a chunk may have landed since the first look.
      const st = await mtimeOf(part);
      if ((st?.mtimeMs ?? u.created_at) >= before) continue;
      if (!catalog.expireUpload(u.job_id, u.upload_key)) continue; // applied meanwhile
      await rm(part, { force: true });
      r.uploads++;
      r.bytes += st?.size ?? 0;
    } finally {
      claims?.release(u.job_id, u.upload_key);
    }
  }

  let jobs: string[];
  try {
    jobs = await readdir(dir);
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return r;
    throw err;
  }
  for (const j of jobs) {
    if (!/^\d+$/.test(j)) continue;
    const jobId = Number(j);
    let names: string[];
    try {
      names = await readdir(join(dir, j));
    } catch {
      continue; // not a directory, or gone
    }
    for (const f of names) {
      if (!f.endsWith(".part")) continue;
      const id = f.slice(0, -".part".length);
      if (catalog.upload(jobId, id)?.state === "open") continue; // the first pass decides
      if (claims && !claims.claim(jobId, id)) continue;
      try {
        const st = await mtimeOf(partOf(jobId, id));
        if (!st || st.mtimeMs >= before) continue;
        if (catalog.upload(jobId, id)?.state === "open") continue; // created meanwhile
        await rm(partOf(jobId, id), { force: true });
        r.orphans++;
        r.bytes += st.size;
      } finally {
        claims?.release(jobId, id);
      }
    }
  }
  return r;
}
