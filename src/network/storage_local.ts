/**
 * The embedded blob store: a local directory, `blobs/<device>/<aa>/<bb>/<hash>`.
 *
 * @module
 */
import {
  createReadStream,
  existsSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  utimesSync,
} from "node:fs";
import { randomBytes } from "node:crypto";
import { copyFile, link, mkdir, readdir, rm, stat, utimes, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { ZSTD_WINDOW_LOG_MAX } from "../ccs/pack_format.ts";
import { errnoCode } from "../core/errors.ts";
import { syncDir, syncFile } from "./durable.ts";
import { loadNative } from "./native.ts";
import { type PackedBlob, SmallBlobs } from "./small_blobs.ts";
import type { BlobStore, ByteRange, KeptPack, PackSweep } from "./storage.ts";

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

/** A kept pack whose referenced frames are less than this share of those it was kept for is unpacked. */
const UNPACK_BELOW = 0.5;
const PACK_NAME = /^[0-9a-f]{64}$/;
/** What a pack being retired is renamed to: `<sha>.pack.dead-<random>`. */
const DEAD = ".dead-";

/**
 * A {@link BlobStore} on a local directory: large blobs are files, small ones rows of
 * `blobs/small.db` ({@link SmallBlobs}), whose frames lie in the row or in a kept pack file,
 * `blobs/packs/<device>/<sha256>.pack`.
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
      (device, pack) => this.#packPath(device, pack),
    );
    this.#recoverRetired();
  }

  #packDir(device: number): string {
    return join(this.root, "packs", String(device));
  }

  #packPath(device: number, pack: string): string {
    if (!PACK_NAME.test(pack) || !Number.isSafeInteger(device)) throw new Error("bad pack name");
    return join(this.#packDir(device), `${pack}.pack`);
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

  async putPacked(device: number, pack: KeptPack, blobs: readonly PackedBlob[]): Promise<void> {
    if (blobs.length === 0) return;
    const dir = this.#packDir(device);
    const dest = this.#packPath(device, pack.sha256);
    const made = await mkdir(dir, { recursive: true });
    const keep = async () => {
      try {
        // A second name for the verified upload, not a copy: its bytes are written once.
        await link(pack.path, dest);
      } catch (err) {
        // EEXIST: the same bytes (the name is their SHA-256), kept by an earlier apply.
        if (errnoCode(err) === "EEXIST") return;
        // No hard links here (FAT, some shares, FUSE): a copy, whole before it is named.
        const tmp = join(this.tmpDir, `${randomBytes(12).toString("hex")}.pack`);
        try {
          await copyFile(pack.path, tmp);
          await syncFile(tmp);
          renameSync(tmp, dest);
        } finally {
          rmSync(tmp, { force: true });
        }
      }
      await syncFile(dest);
      await syncDir(dir);
    };
    await keep();
    for (let d = dir; made !== undefined && d.length >= made.length; d = dirname(d)) {
      await syncDir(dirname(d));
    }
    // New to a sweep's eyes, whatever its age. A sweep that took it away all the same (it
    // had no rows yet) did so under small.db's write lock: the rows are written under it
    // only while the pack is there, else it is named again and the rows tried again.
    const now = new Date();
    await utimes(dest, now, now).catch(async () => await keep());
    for (let attempt = 0;; attempt++) {
      if (this.#smalls.putPacked(device, pack.sha256, blobs, () => existsSync(dest))) return;
      if (attempt >= 3) throw new Error(`kept pack ${pack.sha256} keeps vanishing`);
      await keep();
    }
  }

  async sweepPacks(olderThanMs: number): Promise<PackSweep> {
    this.#recoverRetired();
    const out: PackSweep = { removed: 0, unpacked: 0, bytes: 0 };
    for (const f of this.#packFiles()) {
      if (f.retired) continue;
      const st = await stat(f.path).catch(() => undefined);
      // A pack made or used within the grace period may be about to get its index rows.
      if (!st || st.mtimeMs > olderThanMs) continue;
      // In use: at least half the frame bytes it was kept for (headers and large bodies in
      // it were never used as blobs) are still referenced.
      const use = this.#smalls.packUse(f.device, f.sha);
      if (use.blobs > 0 && use.bytes >= (use.keptBytes ?? st.size) * UNPACK_BELOW) continue;
      // Mostly unused: what is still referenced moves into small.db first. The file is
      // renamed away in the same transaction that finds it has no rows, so an apply that
      // adds rows afterwards finds it gone and names it again; then it is removed.
      const dead = `${f.path}${DEAD}${randomBytes(6).toString("hex")}`;
      let r: { retired: boolean; unpacked: number };
      try {
        r = this.#smalls.retire(f.device, f.sha, use.blobs > 0, () => renameSync(f.path, dead));
      } catch {
        // Rolled back (unreadable pack, full disk, busy): its rows are back, so is its name.
        this.#restoreRetired(f.path, dead);
        continue;
      }
      if (!r.retired) continue;
      rmSync(dead, { force: true });
      out.unpacked += r.unpacked;
      out.removed++;
      out.bytes += st.size;
    }
    return out;
  }

  /** Kept pack files (`<sha>.pack`) and retired ones (`<sha>.pack.dead-*`), of every device. */
  #packFiles(): { device: number; sha: string; path: string; retired: boolean }[] {
    const out: { device: number; sha: string; path: string; retired: boolean }[] = [];
    const packs = join(this.root, "packs");
    let devices: string[];
    try {
      devices = readdirSync(packs);
    } catch {
      return out; // no pack kept yet
    }
    for (const dev of devices) {
      if (!/^\d+$/.test(dev)) continue;
      for (const name of readdirSync(join(packs, dev))) {
        const m = /^([0-9a-f]{64})\.pack(\.dead-[0-9a-f]+)?$/.exec(name);
        if (!m) continue;
        const path = join(packs, dev, name);
        out.push({ device: Number(dev), sha: m[1]!, path, retired: m[2] !== undefined });
      }
    }
    return out;
  }

  /** Names a retired pack back, unless an apply named it again meanwhile. */
  #restoreRetired(file: string, dead: string): void {
    if (!existsSync(dead)) return;
    if (existsSync(file)) rmSync(dead, { force: true });
    else renameSync(dead, file);
  }

  /**
   * After a crash between a sweep's rename and its commit: a retired pack whose rows came
   * back (the journal undid the commit) gets its name back; any other one goes.
   */
  #recoverRetired(): void {
    for (const f of this.#packFiles()) {
      if (!f.retired) continue;
      if (this.#smalls.packUse(f.device, f.sha).blobs > 0) {
        this.#restoreRetired(this.#packPath(f.device, f.sha), f.path);
      } else rmSync(f.path, { force: true });
    }
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
