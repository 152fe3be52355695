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
import { syncDir, syncFile } from "./durable.ts";
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
  // Several files at once (a file costs a request, mostly waiting), downloaded to temp
  // names; every 256 files one flush makes their contents durable, and only then do they
  // get their names: a crash never leaves a restored name with missing content.
  const dirs = new Set<string>();
  let staged: Staged[] = [];
  let committing: Promise<void> = Promise.resolve();
  const commit = (batch: Staged[]) => {
    committing = committing.then(async () => {
      await flushContents(batch.map((s) => s.tmp));
      for (const s of batch) {
        dirs.add(dirname(s.dest));
        progress.path = s.f.path;
        if (!(await place(s, o.overwrite === true))) existing.push(s.f.path);
        else {
          progress.files++;
          progress.bytes += s.f.size;
        }
        o.onProgress?.(progress);
      }
    });
    return committing;
  };
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (next < files.length && !failure) {
      const i = next++;
      const s = await stage(o, files[i]!, dests[i]!);
      staged.push(s); // after the await: `staged` may be a new array by now
      if (staged.length >= 256) {
        const batch = staged;
        staged = [];
        await commit(batch);
      }
    }
  };
  // The first failure stops the others from starting files; it is thrown once all stopped.
  const guarded = () => worker().catch((err) => void (failure ??= { err }));
  try {
    await Promise.all(Array.from({ length: Math.min(RESTORE_PARALLEL, files.length) }, guarded));
    if (failure) throw failure.err;
    await commit(staged);
    staged = [];
  } finally {
    await committing.catch(() => {});
    for (const s of staged) await rm(s.tmp, { force: true });
  }
  // The new names are durable once their folders are.
  for (const dir of dirs) await syncDir(dir);
  existing.sort();
  return { files: progress.files, bytes: progress.bytes, existing };
}

/** Files restored at once. */
const RESTORE_PARALLEL = 8;

/** A file downloaded to its temp name, waiting for its name. */
interface Staged {
  f: RemoteFile;
  tmp: string;
  dest: string;
}

/** Downloads and verifies `f` into a temp file beside `dest`, with its mode and times. */
async function stage(o: RestoreOptions, f: RemoteFile, dest: string): Promise<Staged> {
  const dir = dirname(dest);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.cncop-restore-${randomBytes(6).toString("hex")}`);
  try {
    await download(o, f, tmp);
    await chmod(tmp, f.mode & 0o7777);
    const seconds = Number(BigInt(f.mtimeNs) / 1000n) / 1e6;
    await utimes(tmp, seconds, seconds);
    return { f, tmp, dest };
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Makes the files' contents durable: fsyncs in parallel, which the file system commits
 * together (not `syncfs`: on a restore target shared with other work, flushing the whole
 * file system can wait on everyone else's writes).
 */
async function flushContents(files: string[]) {
  let next = 0;
  const one = async () => {
    while (next < files.length) await syncFile(files[next++]!);
  };
  await Promise.all(Array.from({ length: 16 }, one));
}

/** Gives a staged file its name; false when a file is there already (without overwrite). */
async function place(s: Staged, overwrite: boolean): Promise<boolean> {
  try {
    if (overwrite) {
      await rename(s.tmp, s.dest);
      return true;
    }
    try {
      await link(s.tmp, s.dest); // fails if dest exists: never replaces a file
    } catch (err) {
      if (errnoCode(err) === "EEXIST") return false;
      throw err;
    }
    return true;
  } finally {
    await rm(s.tmp, { force: true });
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
  } finally {
    await fh.close();
  }
}
