/**
 * The embedded blob store: a local directory, `blobs/<device>/<aa>/<bb>/<hash>`.
 *
 * @module
 */
import { createReadStream, existsSync, mkdirSync, renameSync, rmSync, utimesSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { mkdir, readdir, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { ZSTD_WINDOW_LOG_MAX } from "../ccs/pack_format.ts";
import { errnoCode } from "../core/errors.ts";
import { syncDir, syncFile } from "./durable.ts";
import { loadNative } from "./native.ts";
import { type SmallBlob, SmallBlobs } from "./small_blobs.ts";
import type { BlobStore, ByteRange } from "./storage.ts";

const HEX64 = /^[0-9a-f]{64}$/;
/** fsyncs in flight at once: the file system merges their journal commits. */
const SYNC_PARALLEL = 16;

/** Runs `fn` over `items`, at most `limit` at a time. */
async function eachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * A {@link BlobStore} on a local directory: large blobs are files, small ones rows of
 * `blobs/small.db` ({@link SmallBlobs}).
 */
export class LocalBlobStore implements BlobStore {
  readonly name = "local";
  readonly root: string;
  readonly tmpDir: string;
  #small: SmallBlobs | undefined;

  constructor(dataDir: string) {
    this.root = join(dataDir, "blobs");
    this.tmpDir = join(dataDir, "tmp");
  }

  /** Creates the directories and opens the small-blob database. */
  async init(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    await mkdir(this.tmpDir, { recursive: true });
    const native = await loadNative();
    this.#small ??= new SmallBlobs(
      join(this.root, "small.db"),
      (frame, size) => native.zstdDecompress(frame, size, ZSTD_WINDOW_LOG_MAX),
    );
  }

  get #smalls(): SmallBlobs {
    if (!this.#small) throw new Error("LocalBlobStore: init() was not called");
    return this.#small;
  }

  /** Closes the small-blob database. */
  close(): void {
    this.#small?.close();
    this.#small = undefined;
  }

  putFrames(device: number, blobs: readonly SmallBlob[]): Promise<void> {
    // A blob already stored as a file stays a file.
    const now = new Date();
    const fresh = blobs.filter((b) => {
      const p = this.#path(device, b.hash);
      if (!existsSync(p)) return true;
      utimesSync(p, now, now);
      return false;
    });
    if (fresh.length > 0) this.#smalls.putMany(device, fresh);
    return Promise.resolve();
  }

  #path(device: number, hash: string): string {
    if (!HEX64.test(hash) || !Number.isSafeInteger(device)) throw new Error("bad blob address");
    return join(this.root, String(device), hash.slice(0, 2), hash.slice(2, 4), hash);
  }

  async size(device: number, hash: string): Promise<number | undefined> {
    const small = this.#smalls.size(device, hash);
    if (small !== undefined) return small;
    try {
      return (await stat(this.#path(device, hash))).size;
    } catch (err) {
      if (errnoCode(err) === "ENOENT") return undefined;
      throw err;
    }
  }

  async putMany(device: number, blobs: readonly { hash: string; file: string }[]): Promise<void> {
    const place = new Map<string, { dest: string; file: string }>();
    const now = new Date();
    // Synchronous calls: for many small blobs, a trip through the thread pool per call
    // costs more than the call.
    for (const { hash, file } of blobs) {
      const dest = this.#path(device, hash);
      if (place.has(hash) || this.#smalls.touch(device, hash)) {
        rmSync(file, { force: true });
      } else if (existsSync(dest)) {
        utimesSync(dest, now, now); // keeps a concurrent prune's hands off
        rmSync(file, { force: true });
      } else place.set(hash, { dest, file });
    }
    const todo = [...place.values()];
    if (todo.length === 0) return;
    // Content first, then the names: a crash leaves whole blobs or none under their names.
    // One file-system flush where the platform has one, else an fsync per file and folder.
    const native = await loadNative();
    const flushed = await native.syncFs(this.tmpDir);
    if (!flushed) await eachLimit(todo, SYNC_PARALLEL, ({ file }) => syncFile(file));
    const dirs = new Set<string>();
    for (const { dest, file } of todo) {
      const dir = join(dest, "..");
      if (!dirs.has(dir)) {
        // Folders made now must be durable too, and their parents' entries for them.
        const first = mkdirSync(dir, { recursive: true });
        if (first) {
          for (let d = dir; d.length >= first.length; d = dirname(d)) dirs.add(dirname(d));
        }
      }
      dirs.add(dir);
      renameSync(file, dest);
    }
    if (flushed && (await native.syncFs(this.root))) return;
    await eachLimit([...dirs], SYNC_PARALLEL, syncDir);
  }

  read(device: number, hash: string, range?: ByteRange): Readable {
    let small: Uint8Array | undefined;
    try {
      small = this.#smalls.get(device, hash);
    } catch (err) {
      // A damaged frame: fail the stream like a damaged file would, not the caller.
      const r = new Readable({ read() {} });
      r.destroy(err as Error);
      return r;
    }
    if (small) {
      return Readable.from([range ? small.subarray(range.start, range.end + 1) : small]);
    }
    const opts = range ? { start: range.start, end: range.end } : {};
    return createReadStream(this.#path(device, hash), { ...opts, highWaterMark: 1 << 20 });
  }

  async localPath(
    device: number,
    hash: string,
  ): Promise<{ path: string; release(): Promise<void> }> {
    const small = this.#smalls.get(device, hash);
    if (!small) return { path: this.#path(device, hash), release: () => Promise.resolve() };
    const tmp = join(this.tmpDir, `${randomBytes(12).toString("hex")}.small`);
    await writeFile(tmp, small, { mode: 0o600 });
    return { path: tmp, release: () => rm(tmp, { force: true }) };
  }

  async remove(device: number, hash: string, olderThanMs: number): Promise<boolean> {
    if (this.#smalls.remove(device, hash, olderThanMs)) return true;
    const p = this.#path(device, hash);
    try {
      const st = await stat(p);
      if (st.mtimeMs > olderThanMs) return false;
      await rm(p);
      return true;
    } catch (err) {
      if (errnoCode(err) === "ENOENT") return false;
      throw err;
    }
  }

  async *list(): AsyncIterable<{ device: number; hash: string; size: number }> {
    yield* this.#smalls.list();
    for (const dev of await readdir(this.root).catch(() => [] as string[])) {
      if (!/^\d+$/.test(dev)) continue;
      const devDir = join(this.root, dev);
      for (const a of await readdir(devDir)) {
        for (const b of await readdir(join(devDir, a))) {
          for (const h of await readdir(join(devDir, a, b))) {
            if (!HEX64.test(h)) continue;
            const st = await stat(join(devDir, a, b, h));
            yield { device: Number(dev), hash: h, size: st.size };
          }
        }
      }
    }
  }
}
