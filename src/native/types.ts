/**
 * The contract of the native core: what `src/native/mod.ts` exports, backed either by the
 * Rust addon or by the portable TypeScript twins in `portable/`. Both must give identical
 * results for identical inputs (`test/native/parity.test.ts`).
 *
 * Other areas (network, ccs) code against these signatures only.
 *
 * @module
 */

/** What a walk entry is. */
export type EntryKind = "file" | "dir" | "symlink" | "other" | "error";

/** One entry of {@link NativeCore.walk}. Paths are relative to the root, `/`-separated. */
export interface WalkEntry {
  /** Path relative to the walk root, with `/` separators; never starts with `/`. */
  path: string;
  kind: EntryKind;
  size: number;
  /** Modification time, nanoseconds since the Unix epoch. */
  mtimeNs: bigint;
  /** Status change time, nanoseconds since the Unix epoch. */
  ctimeNs: bigint;
  ino: bigint;
  dev: bigint;
  /** st_mode bits (type and permissions). */
  mode: number;
  /** Link target, for symlinks (kind "symlink", or followed links when following). */
  linkTarget?: string;
  /** For kind "error": what went wrong (`EACCES: permission denied`, `ENOENT: vanished`). */
  error?: string;
  /** True when the include filters left this entry out (only with `reportExcluded`). */
  excluded?: boolean;
}

/** Options of {@link NativeCore.walk}. */
export interface WalkOptions {
  /** Follow symlinks (report the target's metadata). @default true */
  followLinks?: boolean;
  /** Skip symlinks entirely (`--nolinks`). Wins over followLinks. @default false */
  skipLinks?: boolean;
  /** Do not descend into other filesystems. @default false */
  oneFileSystem?: boolean;
  /** Glob patterns (picomatch syntax, matched against the relative path); empty = all. */
  include?: string[];
  /** Glob patterns to leave out. */
  exclude?: string[];
  /** Also yield entries the include filters left out, with `excluded: true`. @default false */
  reportExcluded?: boolean;
  /** Entries per batch. @default 4096 */
  batchSize?: number;
}

/** Result of {@link NativeCore.delta}. */
export interface DeltaStats {
  /** Size of the new file. */
  newSize: number;
  /** Bytes of the delta file written. */
  deltaSize: number;
  /** Bytes copied from the base. */
  copiedBytes: number;
  /** Literal bytes carried in the delta. */
  literalBytes: number;
  /** BLAKE3 hex of the new file's content (computed while reading it). */
  newBlake3: string;
}

/** The functions of the native core (addon or portable twin). */
export interface NativeCore {
  /** "native" when the Rust addon is loaded, else "portable". */
  readonly implementation: "native" | "portable";

  /** Recursive scan, sorted by path, in batches. Errors are entries, never throws per entry. */
  walk(root: string, options?: WalkOptions): AsyncIterable<WalkEntry[]>;

  /** xxh3-128 of a buffer, 32 lowercase hex digits. */
  xxh3(data: Uint8Array): string;
  /** xxh3-128 of a file's content, 32 lowercase hex digits. */
  xxh3File(path: string): Promise<string>;
  /** BLAKE3-256 of a buffer, 64 lowercase hex digits. */
  blake3(data: Uint8Array): string;
  /** BLAKE3-256 of a file's content, 64 lowercase hex digits. */
  blake3File(path: string): Promise<string>;
  /** One zstd frame of `data` at `level` (1..22). */
  zstdCompress(data: Uint8Array, level: number): Uint8Array;
  /**
   * Decompresses zstd `data` into at most `maxSize` bytes, with a window of at most
   * 2^`windowLogMax`; larger output or corrupt input throws.
   */
  zstdDecompress(data: Uint8Array, maxSize: number, windowLogMax: number): Uint8Array;
  /**
   * Reads, hashes (BLAKE3) and zstd-compresses many small files at once, off the JS thread
   * and on every core; errors are per file. `sizes` are the sizes the caller expects (the
   * peek's): the native core then stats each file once, after its read. A wrong one does
   * not change what is read; the result's `size` is the file's after the read. `forks`
   * (with `sizes`) keeps the backup state of each file that still has its listed size and
   * mtime in its fork, written while the file is open (the portable core writes none: see
   * `forked`).
   */
  readFilesForPack(
    paths: string[],
    level: number,
    sizes?: number[],
    forks?: PackForks,
  ): Promise<FileForPack[]>;
  /**
   * Verifies pack body frames in parallel off the JS thread: each must decode (when
   * `zstd`) to `size` bytes whose BLAKE3 is `blake3`. Resolves to "" per good frame, else
   * the reason.
   */
  verifyFrames(checks: FrameCheck[], windowLogMax: number): Promise<string[]>;
  /**
   * Writes a one-entry pack of the large file `source` in one read of it: `prefix` (magic,
   * header length, header), the body as zstd frames (raw with `level` 0), `suffix`, then
   * the SHA-256 trailer, to `out`, fsynced (renaming it into place is the caller's). The
   * content's BLAKE3 goes into the 64-digit placeholder at `hashAt`, and with `sig` its
   * block signature is written too. Rejects with a message starting `ECHANGED` when the
   * file does not keep `size` and `mtimeNs`, leaving neither file behind.
   */
  writeFilePack(o: FilePackOptions): Promise<FilePackWritten>;
  /**
   * Starts the body of a large pack entry, at most `maxSize` bytes, written to `path`
   * (undefined: only checked): frames go in with `write`, in order (one zstd stream across
   * them when `zstd`, with a window of at most 2^`windowLogMax`; else raw), and are
   * decompressed, hashed and written in one pass. Errors of a corrupt or oversized body
   * start with `EPACK`.
   */
  inflateStart(
    path: string | undefined,
    zstd: boolean,
    maxSize: number,
    windowLogMax: number,
  ): Promise<BodyWriter>;
  /**
   * Returns the allocator's free memory to the system (glibc `malloc_trim`); false where
   * there is nothing to do (the portable twin). Called between batches of long runs.
   */
  trimMemory(): boolean;
  /**
   * Flushes the whole file system holding `path` to stable storage (Linux `syncfs`): one
   * barrier for many files just written. False where there is no such call; fsync each
   * file then.
   */
  syncFs(path: string): Promise<boolean>;

  /**
   * Writes the block signature of `basePath` to `sigPath` (format: docs/formats/delta.md).
   * `blockSize` 0 chooses it from the file size.
   */
  signature(basePath: string, sigPath: string, blockSize?: number): Promise<void>;
  /** Writes the delta of `newPath` against the signature in `sigPath` to `deltaPath`. */
  delta(sigPath: string, newPath: string, deltaPath: string): Promise<DeltaStats>;
  /**
   * Writes `outPath` = base + delta. Verifies the result's BLAKE3 against `expectedBlake3`
   * and throws (leaving no `outPath`) on mismatch, on a COPY past the base's end, or on a
   * malformed delta.
   */
  patch(
    basePath: string,
    deltaPath: string,
    outPath: string,
    expectedBlake3: string,
  ): Promise<void>;

  /**
   * Takes an OS file lock (flock / LockFileEx) on `path`, created if missing; released by the
   * OS when the process dies. `wait` false returns null when another holder has it.
   */
  lockFile(path: string, wait: boolean): Promise<FileLock | null>;

  /** Reads a named fork (user xattr / NTFS ADS); null when absent. */
  forkRead(path: string, name: string): Buffer | null;
  /** Writes a named fork without changing the file's mtime. */
  forkWrite(path: string, name: string, value: Uint8Array): void;
  /** Removes a named fork; no error when absent. */
  forkRemove(path: string, name: string): void;
  /** Whether the filesystem holding `dir` supports forks. */
  forksSupported(dir: string): boolean;
}

/** A held OS file lock. */
export interface FileLock {
  release(): void;
}

/** One pack body frame for {@link NativeCore.verifyFrames}. */
export interface FrameCheck {
  frame: Uint8Array;
  zstd: boolean;
  size: number;
  blake3: string;
}

/** A small file read for a pack entry by {@link NativeCore.readFilesForPack}. */
export interface FileForPack {
  /** The zstd frame when `compressed`, else the content. */
  data: Uint8Array;
  compressed: boolean;
  /** BLAKE3 hex of the content. */
  blake3: string;
  /** Size and mtime (ns, decimal) of the file after it was read. */
  size: number;
  mtimeNs: string;
  /** The file's state went into its fork (see {@link PackForks}). */
  forked: boolean;
  /** "" when read, else an error code (`ENOENT`, `EACCES`, `EIO`) and text. */
  error: string;
}

/**
 * The fork to keep each file's backup state in (`encodeForkState` in src/ccs/file_state.ts)
 * and the mtime (ns, decimal) each file was listed with.
 */
export interface PackForks {
  name: string;
  mtimesNs: string[];
}

/** What {@link NativeCore.writeFilePack} writes. */
export interface FilePackOptions {
  source: string;
  out: string;
  /** The bytes before the body, with a 64-digit placeholder for the hash at `hashAt`. */
  prefix: Uint8Array;
  /** Where the placeholder lies; absent when the header's hash is not the body's (a delta). */
  hashAt?: number;
  /** The bytes after the body frames. */
  suffix: Uint8Array;
  /** zstd level (1..9); 0 writes the body raw. */
  level: number;
  /** The size and mtime (ns, decimal) the source must keep. */
  size: number;
  mtimeNs: string;
  /** Also write the content's block signature here. */
  sig?: string;
}

/** A pack written by {@link NativeCore.writeFilePack}. */
export interface FilePackWritten {
  /** Bytes of the pack file. */
  bytes: number;
  /** Its SHA-256 trailer, hex. */
  sha256: string;
  /** BLAKE3 hex of the content read. */
  blake3: string;
}

/** A body file being written by {@link NativeCore.inflateStart}. */
export interface BodyWriter {
  /** Adds the next frame. */
  write(frame: Uint8Array): Promise<void>;
  /** Ends the body (flushed, not fsynced): its BLAKE3 hex and size. */
  finish(): Promise<{ blake3: string; size: number }>;
  /** Drops an unfinished body, closing its file (removing it is the caller's). */
  abort(): void;
}
