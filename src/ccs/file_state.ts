/**
 * A file's backup state (content hash + the size and mtime it was computed for), found
 * without reading the file when possible: the file cache by path, else by device + inode
 * (a renamed file keeps its inode), else the file's own fork (user xattr / NTFS ADS, which
 * follows the file through renames and survives a lost work.db), else by hashing it.
 *
 * @module
 */
import { statSync } from "node:fs";
import { native } from "../native/mod.ts";
import type { WorkDb } from "./work_queue.ts";

/**
 * A fork's state: version byte 1, the BLAKE3 (32 bytes), the size (u64) and the mtime in
 * ns (i64), little-endian: 49 bytes. Small enough to sit inside an ext4 inode (the JSON of
 * before, 109 bytes, made the file system allocate a 4 KB block per file: a first backup
 * of the Linux tree wrote 340 MB of them, and took 2 s longer).
 */
export function encodeForkState(hash: string, size: number, mtimeNs: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/.test(hash)) throw new Error(`not a BLAKE3 hash: ${hash}`);
  const b = new Uint8Array(49);
  const dv = new DataView(b.buffer);
  b[0] = 1;
  b.set(Buffer.from(hash, "hex").subarray(0, 32), 1);
  dv.setBigUint64(33, BigInt(size), true);
  dv.setBigInt64(41, BigInt(mtimeNs), true);
  return b;
}

/** A fork's state: the binary form, or the JSON `{h, s, m}` of earlier versions. */
export function decodeForkState(
  b: Uint8Array,
): { hash: string; size: number; mtimeNs: string } | undefined {
  if (b.length === 49 && b[0] === 1) {
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    return {
      hash: Buffer.from(b.buffer, b.byteOffset + 1, 32).toString("hex"),
      size: Number(dv.getBigUint64(33, true)),
      mtimeNs: String(dv.getBigInt64(41, true)),
    };
  }
  if (b[0] !== 0x7b) return undefined; // "{"
  const s = JSON.parse(new TextDecoder().decode(b)) as { h?: unknown; s?: unknown; m?: unknown };
  if (typeof s.h !== "string" || typeof s.s !== "number" || typeof s.m !== "string") {
    return undefined;
  }
  return { hash: s.h, size: s.s, mtimeNs: s.m };
}

/** Name of the fork holding the state. */
export const FORK_NAME = "cncop.state";

/** A file to find the hash of. */
export interface StatFile {
  path: string;
  abs: string;
  size: number;
  mtimeNs: string;
  ino?: string | null;
  dev?: string | null;
}

/** Where hashes came from, for the log. */
export interface HashCounts {
  fork: number;
  cache: number;
  inode: number;
  read: number;
}

/**
 * Decides whether to use forks: `--usefork` / `--nofork`, else detection. The native probe
 * writes a file, which would change the source root's last-write time (and defeat the
 * skip-when-unchanged test), so it runs in `probeDir` (Spool/Work) when that is on the same
 * filesystem as `root`; otherwise reading a fork of the root itself decides.
 */
export function useForks(root: string, choice: "auto" | "on" | "off", probeDir?: string): boolean {
  if (choice === "off") return false;
  if (choice === "on") return true;
  try {
    if (probeDir && statSync(probeDir).dev === statSync(root).dev) {
      return native.forksSupported(probeDir);
    }
    native.forkRead(root, FORK_NAME);
    return native.implementation === "native";
  } catch {
    return false;
  }
}

/** Finds content hashes of files (see the module doc). */
export class FileStates {
  readonly counts: HashCounts = { fork: 0, cache: 0, inode: 0, read: 0 };
  #work: WorkDb;
  #job: number;
  #forks: boolean;
  /** File cache answers looked up ahead (path -> hash and how it was found). */
  #ahead = new Map<string, { hash: string; inode: boolean }>();

  constructor(work: WorkDb, job: number, forks: boolean) {
    this.#work = work;
    this.#job = job;
    this.#forks = forks;
  }

  get forks(): boolean {
    return this.#forks;
  }

  /** The state kept in the file's fork, when it matches the file's size and mtime. */
  fromFork(f: StatFile): string | undefined {
    if (!this.#forks) return undefined;
    try {
      const buf = native.forkRead(f.abs, FORK_NAME);
      const s = buf ? decodeForkState(buf) : undefined;
      if (s && s.size === f.size && s.mtimeNs === f.mtimeNs) return s.hash;
    } catch {
      // unreadable or foreign fork: hash instead
    }
    return undefined;
  }

  /** Writes the state into the file's fork (best effort; the mtime does not change). */
  remember(f: StatFile, hash: string): void {
    if (!this.#forks) return;
    try {
      native.forkWrite(f.abs, FORK_NAME, encodeForkState(hash, f.size, f.mtimeNs));
    } catch {
      // read-only file or filesystem: the file cache still has it
    }
  }

  /**
   * The hash without reading the content, or undefined. The file cache first (by path, then
   * by device + inode: a renamed file keeps its inode), the fork last: a database lookup
   * costs a few microseconds, a fork read a system call (5,695 of them took 0.3-0.6 s).
   */
  known(f: StatFile): string | undefined {
    const a = this.#ahead.get(f.path);
    if (a) {
      this.#ahead.delete(f.path);
      this.counts[a.inode ? "inode" : "cache"]++;
      return a.hash;
    }
    const c = this.#work.cached(this.#job, f.path);
    if (c && c.size === f.size && c.mtimeNs === f.mtimeNs) {
      this.counts.cache++;
      return c.hash;
    }
    if (f.ino && f.dev) {
      const i = this.#work.cachedByInode(this.#job, f.dev, f.ino, f.size, f.mtimeNs);
      if (i) {
        this.counts.inode++;
        return i.hash;
      }
    }
    const h = this.fromFork(f);
    if (h) {
      this.counts.fork++;
      return h;
    }
    return undefined;
  }

  /**
   * Looks up what the file cache knows of `files` in two joins instead of two queries per
   * file (a folder rename asks for thousands); {@link known} then answers from memory.
   */
  lookAhead(files: StatFile[]): void {
    for (const [path, a] of this.#work.cachedHashes(this.#job, files)) this.#ahead.set(path, a);
  }

  /** The hash, reading the file when nothing knows it; undefined when it cannot be read. */
  async hash(f: StatFile): Promise<string | undefined> {
    const k = this.known(f);
    if (k) return k;
    try {
      const h = await native.blake3File(f.abs);
      this.counts.read++;
      this.remember(f, h);
      return h;
    } catch {
      return undefined;
    }
  }
}
