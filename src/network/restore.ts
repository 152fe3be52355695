/**
 * Restores files or trees from the cncop network as they were at a point in time. Each file
 * is written to a temp file beside its destination, verified against its BLAKE3, given its
 * mode and mtime, fsynced and only then linked into place; an existing file is never
 * replaced unless `overwrite` is set.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { chmod, link, mkdir, open, rename, rm, utimes } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import { CncopError, errnoCode, messageOf, TransientError } from "../core/errors.ts";
import { checkPackPath } from "../ccs/pack_format.ts";
import type { NetworkClient, RemoteFile } from "./client.ts";
import { syncDir } from "./durable.ts";
import { loadNative } from "./native.ts";

/** Progress of a restore. */
export interface RestoreProgress {
  files: number;
  bytes: number;
  totalFiles: number;
  totalBytes: number;
  path: string;
}

/** Options of {@link restoreFiles}. */
export interface RestoreOptions {
  client: NetworkClient;
  job: string;
  /** A file or folder (relative, `/`-separated); everything when absent. */
  path?: string;
  /** Point in time (ms since epoch); now when absent. */
  at?: number;
  /** Destination directory; files keep their job-relative paths below it. */
  to: string;
  /** Replace existing files. @default false */
  overwrite?: boolean;
  onProgress?: (p: RestoreProgress) => void;
}

/** What a restore did. */
export interface RestoreResult {
  files: number;
  bytes: number;
  /** Paths not restored because a file exists there (without `overwrite`). */
  existing: string[];
}

/**
 * Restores `path` (or the whole job) as it was at `at` into `to`.
 *
 * @throws {CncopError} when nothing matches, or a file's content fails its hash.
 */
export async function restoreFiles(o: RestoreOptions): Promise<RestoreResult> {
  const files: RemoteFile[] = [];
  for await (const f of o.client.peek(o.job, { prefix: o.path, at: o.at })) files.push(f);
  if (files.length === 0) {
    const when = o.at === undefined ? "now" : `at ${new Date(o.at).toISOString()}`;
    throw new CncopError(
      `nothing in job ${o.job}${o.path ? ` at ${JSON.stringify(o.path)}` : ""} ${when}`,
      { hint: "list with --list or --versions PATH" },
    );
  }
  const root = resolve(o.to);
  await mkdir(root, { recursive: true });
  const progress: RestoreProgress = {
    files: 0,
    bytes: 0,
    totalFiles: files.length,
    totalBytes: files.reduce((n, f) => n + f.size, 0),
    path: "",
  };
  const existing: string[] = [];
  const dests = files.map((f) => {
    checkPackPath(f.path);
    const dest = resolve(root, ...f.path.split("/"));
    if (relative(root, dest).startsWith("..") || !dest.startsWith(root + sep)) {
      throw new CncopError(`refusing to restore ${JSON.stringify(f.path)} outside ${root}`);
    }
    return dest;
  });
  // Several files at once: a file costs a request and an fsync, mostly waiting. Each is
  // downloaded to a temp name, fsynced, and only then named.
  const dirs = new Set<string>();
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (next < files.length && !failure) {
      const i = next++;
      const f = files[i]!;
      const written = await restoreOne(o, f, dests[i]!);
      dirs.add(dirname(dests[i]!));
      progress.path = f.path;
      if (!written) existing.push(f.path);
      else {
        progress.files++;
        progress.bytes += f.size;
      }
      o.onProgress?.(progress);
    }
  };
  // The first failure stops the others from starting files; it is thrown once all stopped.
  const guarded = () => worker().catch((err) => void (failure ??= { err }));
  await Promise.all(Array.from({ length: Math.min(RESTORE_PARALLEL, files.length) }, guarded));
  if (failure) throw failure.err;
  // The new names are durable once their folders are.
  for (const dir of dirs) await syncDir(dir);
  existing.sort();
  return { files: progress.files, bytes: progress.bytes, existing };
}

/** Files restored at once. */
const RESTORE_PARALLEL = 8;

/** Restores one file; false when a file is there already (without overwrite). */
async function restoreOne(o: RestoreOptions, f: RemoteFile, dest: string): Promise<boolean> {
  const dir = dirname(dest);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.cncop-restore-${randomBytes(6).toString("hex")}`);
  try {
    await download(o, f, tmp); // fsynced
    await chmod(tmp, f.mode & 0o7777);
    const seconds = Number(BigInt(f.mtimeNs) / 1000n) / 1e6;
    await utimes(tmp, seconds, seconds);
    if (o.overwrite) {
      await rename(tmp, dest);
      return true;
    }
    try {
      await link(tmp, dest); // fails if dest exists: never replaces a file
    } catch (err) {
      if (errnoCode(err) === "EEXIST") return false;
      throw err;
    }
    return true;
  } finally {
    await rm(tmp, { force: true });
  }
}

/** Downloads a version to `tmp`, resuming a cut transfer, and verifies size and hash. */
async function download(o: RestoreOptions, f: RemoteFile, tmp: string): Promise<void> {
  const fh = await open(tmp, "wx", 0o600);
  try {
    let got = 0;
    for (let attempt = 0; got < f.size || attempt === 0; attempt++) {
      if (attempt > 3) {
        throw new TransientError(`the download of ${f.path} was cut off ${attempt} times`);
      }
      try {
        const res = await o.client.openContent(o.job, f.version, got);
        for await (const c of res) {
          const chunk = c as Buffer;
          if (got + chunk.length > f.size) {
            throw new CncopError(`${f.path}: more data than its size`);
          }
          await fh.write(chunk);
          got += chunk.length;
        }
      } catch (err) {
        if (err instanceof CncopError && !(err instanceof TransientError)) throw err;
        if (attempt >= 3) {
          throw new TransientError(`download of ${f.path} failed: ${messageOf(err)}`);
        }
      }
      if (f.size === 0) break;
    }
    // Hashed natively from the written file (far faster than hashing the stream in wasm).
    if ((await (await loadNative()).blake3File(tmp)) !== f.hash) {
      throw new CncopError(`${f.path}: restored content does not match its hash`, {
        hint: "run 'cncopd check' on the network",
      });
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}
