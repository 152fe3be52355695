/**
 * Writes pack instruction files (docs/formats/pack.md): one-entry packs whose body file is
 * read once by the native core ({@link writePack}, never held whole in memory), and
 * packs of many small entries ({@link PackBuilder}). Both write to a temp file, fsync and
 * rename, so a pack on disk is always complete.
 *
 * @example
 * ```ts
 * await packAdd("/spool/0001.pack", { job: "7", path: "docs/a.txt", source: "/data/docs/a.txt" });
 * ```
 *
 * @module
 */
import { createHash } from "node:crypto";
import { type FileHandle, open, rename, rm, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { CncopError } from "../core/errors.ts";
import { native } from "../native/mod.ts";
import {
  MAX_ENTRIES,
  PACK_FORMAT,
  PACK_MAGIC,
  type PackCompression,
  type PackHeader,
  type PackKind,
  validateHeader,
} from "./pack_format.ts";

/** The source file changed between hashing and packing: pack it again later. */
export class SourceChangedError extends CncopError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, {
      hint: "the file is being written to; it will be packed on the next run",
      ...options,
    });
    this.name = "SourceChangedError";
  }
}

/** Fields common to every pack. */
export interface PackCommon {
  job: string;
  path: string;
  /** Creating program. @default "cncop" */
  program?: string;
  /** @default "0.1.0" */
  programVersion?: string;
  /** @default "zstd" */
  compression?: PackCompression;
  /** zstd level, clamped to 1..9 so readers' window limit holds. @default 1 */
  level?: number;
}

/** What a written pack is. */
export interface PackWritten {
  path: string;
  /** The first entry's header. */
  header: PackHeader;
  /** Every entry's header, in order. */
  headers: PackHeader[];
  /** Bytes of the pack file. */
  bytes: number;
  /** SHA-256 hex of the pack file without its trailer (= the trailer). */
  sha256: string;
}

let isoMs = -1;
let iso = "";

/** Now as an ISO string, made once a millisecond: a pack of small files asks once a file. */
function nowIso(): string {
  const ms = Date.now();
  if (ms !== isoMs) iso = new Date(isoMs = ms).toISOString();
  return iso;
}

/** A header of `kind` with the common fields filled and the rest zero. */
export function baseHeader(kind: PackKind, c: PackCommon): PackHeader {
  return {
    format: PACK_FORMAT,
    kind,
    job: c.job,
    path: c.path,
    size: 0,
    mtimeNs: "0",
    mode: 0,
    hash: "",
    bodySize: 0,
    compression: c.compression ?? "zstd",
    program: c.program ?? "cncop",
    programVersion: c.programVersion ?? "0.1.0",
    created: nowIso(),
  };
}

function mtimeString(v: string | bigint | number | undefined, fallbackMs: number): string {
  if (v === undefined) return String(BigInt(Math.round(fallbackMs * 1e6)));
  return typeof v === "number" ? String(BigInt(Math.round(v))) : String(v);
}

/** Largest body {@link PackBuilder} compresses in memory as one frame. */
export const IN_MEMORY_BODY_MAX = 2 * 1024 * 1024;

/** A pack's temporary name, beside it, until it is complete and renamed into place. */
function tmpNameOf(outPath: string): string {
  return `${outPath}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
}

/** An entry's end frame: a zero length. */
const END_FRAME = new Uint8Array(4);

/**
 * A pack file being written: a temp file hashed as it grows, then fsynced and renamed
 * into place by {@link PackFile.finish}, so a pack on disk is always complete.
 */
class PackFile {
  readonly outPath: string;
  readonly tmp: string;
  #fh: FileHandle;
  #sha = createHash("sha256");
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  bytes = 0;

  private constructor(outPath: string, tmp: string, fh: FileHandle) {
    this.outPath = outPath;
    this.tmp = tmp;
    this.#fh = fh;
  }

  static async create(outPath: string): Promise<PackFile> {
    const tmp = tmpNameOf(outPath);
    const f = new PackFile(outPath, tmp, await open(tmp, "wx", 0o600));
    f.put(PACK_MAGIC);
    return f;
  }

  /** Appends bytes (buffered; hashed and written by {@link flush}). */
  put(data: Uint8Array): void {
    this.bytes += data.length;
    this.#pending.push(data);
    this.#pendingBytes += data.length;
  }

  async flush(force = false): Promise<void> {
    if (this.#pendingBytes === 0 || (!force && this.#pendingBytes < 1 << 20)) return;
    const bufs = this.#pending;
    const total = this.#pendingBytes;
    this.#pending = [];
    this.#pendingBytes = 0;
    if (bufs.length === 1) {
      this.#sha.update(bufs[0]!);
      await writeAll(this.#fh, bufs[0]!);
      return;
    }
    // One buffer, hashed in one update and written in one call: a pack of small entries
    // is three pieces an entry, and an update each cost more than copying them. The buffer
    // is kept for the next flush: a fresh megabyte each time was mapped anew and faulted in
    // page by page (73k page faults in a first backup of the Linux tree).
    const scratch = takeScratch(total);
    try {
      let at = 0;
      for (const b of bufs) {
        scratch.set(b, at);
        at += b.length;
      }
      const data = scratch.subarray(0, total);
      this.#sha.update(data);
      await writeAll(this.#fh, data);
    } finally {
      giveScratch(scratch);
    }
  }

  putU32(n: number): void {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(n);
    this.put(b);
  }

  /**
   * Header length and header of an entry, and the length of its first body frame when
   * `frameLength` is given, as one buffer (a buffer per piece cost each small file three).
   */
  putHeader(header: PackHeader, frameLength?: number): void {
    const json = JSON.stringify(header);
    const len = Buffer.byteLength(json);
    const b = Buffer.allocUnsafe(4 + len + (frameLength === undefined ? 0 : 4));
    b.writeUInt32BE(len);
    b.write(json, 4, "utf8");
    if (frameLength !== undefined) b.writeUInt32BE(frameLength, 4 + len);
    this.put(b);
  }

  /** The end frame of an entry (one shared buffer: it is only ever copied). */
  putEnd(): void {
    this.put(END_FRAME);
  }

  /** Ends the entries, writes the trailer, fsyncs and renames into place. */
  async finish(): Promise<{ bytes: number; sha256: string }> {
    this.putU32(0);
    await this.flush(true);
    const digest = this.#sha.digest();
    await writeAll(this.#fh, digest);
    this.bytes += digest.length;
    await this.#fh.sync();
    await this.#fh.close();
    await rename(this.tmp, this.outPath);
    await syncDir(dirname(this.outPath));
    return { bytes: this.bytes, sha256: digest.toString("hex") };
  }

  async abort(): Promise<void> {
    await this.#fh.close().catch(() => {});
    await rm(this.tmp, { force: true });
  }
}

/** Flush buffers free for reuse (one per flush under way; a writer has one at a time). */
const scratchFree: Buffer[] = [];
/** Size of a flush buffer: a flush is 1 MiB and the last pieces that got it there. */
const SCRATCH_BYTES = 2 << 20;

function takeScratch(bytes: number): Buffer {
  if (bytes > SCRATCH_BYTES) return Buffer.allocUnsafeSlow(bytes); // a rare big piece
  return scratchFree.pop() ?? Buffer.allocUnsafeSlow(SCRATCH_BYTES);
}

function giveScratch(b: Buffer): void {
  if (b.length === SCRATCH_BYTES && scratchFree.length < 2) scratchFree.push(b);
}

async function writeAll(fh: FileHandle, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const { bytesWritten } = await fh.write(data, off, data.length - off);
    off += bytesWritten;
  }
}

/** zstd level of pack bodies unless told: see decisions/0051. */
export const DEFAULT_LEVEL = 1;

function zstdLevel(level: number | undefined): number {
  return Math.min(9, Math.max(1, Math.round(level ?? DEFAULT_LEVEL)));
}

/** Where a 64-digit hash placeholder goes while the body's hash is not known yet. */
const HASH_PLACEHOLDER = "0".repeat(64);

/**
 * Writes a one-entry pack with the given header; the body file `bodyPath` (add: the
 * content, update: the delta) is read once by the native core, never held whole in memory:
 * an add's header gets the BLAKE3 of exactly the bytes sent, and with `sig` the content's
 * block signature is written from the same read. A `header.hash` already given for an add
 * must match what was read.
 *
 * @throws {SourceChangedError} when the body file changes, or an add's content is not the
 * one its given hash names.
 * @throws {PackRejectedError} when the header is invalid.
 */
export async function writePack(
  outPath: string,
  header: PackHeader,
  bodyPath?: string,
  level = DEFAULT_LEVEL,
  options: { sig?: string } = {},
): Promise<PackWritten> {
  validateHeader(header, Number.MAX_SAFE_INTEGER);
  if (header.bodySize > 0 && bodyPath === undefined) {
    throw new CncopError("writePack: a body is declared but no body file given");
  }
  if (bodyPath === undefined || header.bodySize === 0) {
    const f = await PackFile.create(outPath);
    try {
      f.putHeader(header);
      f.putEnd();
      const done = await f.finish();
      return { path: outPath, header, headers: [header], ...done };
    } catch (err) {
      await f.abort();
      throw err;
    }
  }
  const add = header.kind === "add";
  const json = JSON.stringify(add ? { ...header, hash: HASH_PLACEHOLDER } : header);
  const key = `"hash":"${HASH_PLACEHOLDER}"`;
  const hashAt = add ? Buffer.byteLength(json.slice(0, json.indexOf(key))) + 8 : undefined;
  const jsonBytes = Buffer.from(json, "utf8");
  const prefix = Buffer.allocUnsafe(PACK_MAGIC.length + 4 + jsonBytes.length);
  prefix.set(PACK_MAGIC, 0);
  prefix.writeUInt32BE(jsonBytes.length, PACK_MAGIC.length);
  prefix.set(jsonBytes, PACK_MAGIC.length + 4);
  // An add's body must still be the listed file; a delta is checked against its own stat.
  const mtimeNs = add ? header.mtimeNs : String((await stat(bodyPath, { bigint: true })).mtimeNs);
  const tmp = tmpNameOf(outPath);
  let w: { bytes: number; sha256: string; blake3: string };
  try {
    w = await native.writeFilePack({
      source: bodyPath,
      out: tmp,
      prefix,
      ...(hashAt !== undefined ? { hashAt: PACK_MAGIC.length + 4 + hashAt } : {}),
      suffix: new Uint8Array(8), // the entry's end frame, the end of the entries
      level: header.compression === "zstd" ? zstdLevel(level) : 0,
      size: header.bodySize,
      mtimeNs,
      ...(options.sig !== undefined ? { sig: options.sig } : {}),
    });
  } catch (err) {
    const m = /ECHANGED: (.*)/.exec((err as Error).message);
    if (m) throw new SourceChangedError(m[1]!, { cause: err });
    throw err;
  }
  try {
    if (add && header.hash !== HASH_PLACEHOLDER && header.hash !== w.blake3) {
      throw new SourceChangedError(`${bodyPath} changed while it was packed (hash differs)`);
    }
    await rename(tmp, outPath);
    await syncDir(dirname(outPath));
  } catch (err) {
    await rm(tmp, { force: true });
    if (options.sig !== undefined) await rm(options.sig, { force: true });
    throw err;
  }
  const done = add ? { ...header, hash: w.blake3 } : header;
  return { path: outPath, header: done, headers: [done], bytes: w.bytes, sha256: w.sha256 };
}

/**
 * Writes a pack of many entries whose bodies are in memory (at most
 * {@link IN_MEMORY_BODY_MAX} bytes each): small adds, small deltas, moves and deletes.
 * One pack for hundreds of small files keeps the per-file costs of the enqueuer, the
 * dequeuer and the network (a file, a request, an fsync, a commit) off the hot path.
 *
 * @example
 * ```ts
 * const b = await PackBuilder.create("/spool/J7-1.pack", { job: "7" });
 * b.add(header, content);
 * const written = await b.finish();
 * ```
 */
export class PackBuilder {
  readonly path: string;
  readonly headers: PackHeader[] = [];
  /** Uncompressed body bytes added so far. */
  bodyBytes = 0;
  #f: PackFile;
  #level: number;

  private constructor(path: string, f: PackFile, level: number) {
    this.path = path;
    this.#f = f;
    this.#level = level;
  }

  static async create(outPath: string, o: { level?: number } = {}): Promise<PackBuilder> {
    return new PackBuilder(outPath, await PackFile.create(outPath), zstdLevel(o.level));
  }

  /** Bytes of the pack so far. */
  get bytes(): number {
    return this.#f.bytes;
  }

  /**
   * Appends an entry. `body` must be exactly `header.bodySize` bytes; an add's body must
   * match `header.hash` (the caller hashed it). `compressed`, when given, is the body's zstd
   * frame made by the caller (else it is compressed here). A zstd body that does not shrink
   * is stored raw (`compression` becomes "none").
   *
   * @throws {PackRejectedError} when the header is invalid.
   */
  async add(header: PackHeader, body?: Uint8Array, compressed?: Uint8Array): Promise<void> {
    const size = body?.length ?? 0;
    if (size !== header.bodySize) {
      throw new CncopError(`PackBuilder: body of ${size} bytes, header says ${header.bodySize}`);
    }
    let frame = body;
    if (body && size > 0 && header.compression === "zstd") {
      const z = compressed?.length ? compressed : native.zstdCompress(body, this.#level);
      if (z.length < size) frame = z;
      else header = { ...header, compression: "none" };
    }
    await this.addEncoded(header, frame);
  }

  /**
   * Appends an entry whose body is already encoded as `header.compression` says: one zstd
   * frame of the `header.bodySize` bytes, or the bytes themselves ("none").
   *
   * @throws {PackRejectedError} when the header is invalid.
   */
  async addEncoded(header: PackHeader, frame?: Uint8Array): Promise<void> {
    if (header.bodySize > IN_MEMORY_BODY_MAX) {
      throw new CncopError(
        `PackBuilder: a body of ${header.bodySize} bytes must be streamed (writePack)`,
      );
    }
    if (this.headers.length >= MAX_ENTRIES) throw new CncopError("PackBuilder: pack is full");
    validateHeader(header, Number.MAX_SAFE_INTEGER);
    if (frame && frame.length > 0) {
      this.#f.putHeader(header, frame.length);
      this.#f.put(frame);
    } else this.#f.putHeader(header);
    this.#f.putEnd();
    this.headers.push(header);
    this.bodyBytes += header.bodySize;
    await this.#f.flush();
  }

  /** Completes the pack (fsync, rename into place). */
  async finish(): Promise<PackWritten> {
    if (this.headers.length === 0) throw new CncopError("PackBuilder: an empty pack");
    try {
      const done = await this.#f.finish();
      return { path: this.path, header: this.headers[0]!, headers: this.headers, ...done };
    } catch (err) {
      await this.#f.abort();
      throw err;
    }
  }

  /** Drops the unfinished pack. */
  abort(): Promise<void> {
    return this.#f.abort();
  }
}

async function syncDir(dir: string): Promise<void> {
  if (process.platform === "win32") return;
  const d = await open(dir, "r");
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** Options of {@link packAdd}. */
export interface PackAddOptions extends PackCommon {
  /** The file whose content is packed. */
  source: string;
  /** The source's mtime (ns) as listed: it must still have it; from its stat when absent. */
  mtimeNs?: string | bigint;
  /** Permission bits; from the source's stat when absent. */
  mode?: number;
  /** BLAKE3 hex of the content if already known (else computed first). */
  hash?: string;
  /** Size if already known (else from stat). */
  size?: number;
  /** Also write the content's block signature here (from the same read). */
  sig?: string;
}

/**
 * Packs a whole file (pack-add).
 *
 * @throws {SourceChangedError} when the file changes while it is packed.
 */
export async function packAdd(outPath: string, o: PackAddOptions): Promise<PackWritten> {
  const st = await stat(o.source, { bigint: true });
  const size = o.size ?? Number(st.size);
  const header = baseHeader("add", o);
  header.size = size;
  header.bodySize = size;
  // Hashed while it is packed (writePack), in the same read; a hash given must match.
  header.hash = o.hash ?? (size > 0 ? HASH_PLACEHOLDER : native.blake3(new Uint8Array(0)));
  header.mtimeNs = o.mtimeNs !== undefined ? String(o.mtimeNs) : String(st.mtimeNs);
  header.mode = o.mode ?? Number(st.mode) & 0o7777;
  return writePack(outPath, header, o.source, o.level, o.sig !== undefined ? { sig: o.sig } : {});
}

/** Options of {@link packUpdate}. */
export interface PackUpdateOptions extends PackCommon {
  /** The delta file (native `delta()` output) against `base`. */
  deltaPath: string;
  /** Version id of the base on the network. */
  base: number;
  /** BLAKE3 hex of the base content, checked by the network. */
  baseHash?: string;
  /** Size and BLAKE3 hex of the new content. */
  size: number;
  hash: string;
  mtimeNs: string | bigint | number;
  mode: number;
}

/** Packs a delta against a stored version (pack-update). */
export async function packUpdate(outPath: string, o: PackUpdateOptions): Promise<PackWritten> {
  const st = await stat(o.deltaPath);
  const header = baseHeader("update", o);
  header.size = o.size;
  header.hash = o.hash;
  header.base = o.base;
  if (o.baseHash !== undefined) header.baseHash = o.baseHash;
  header.bodySize = st.size;
  header.mtimeNs = mtimeString(o.mtimeNs, 0);
  header.mode = o.mode & 0o7777;
  return writePack(outPath, header, o.deltaPath, o.level);
}

/** Options of {@link packMove}. */
export interface PackMoveOptions extends PackCommon {
  newPath: string;
  /** `path` is a folder: move everything under it. */
  folder?: boolean;
}

/** Packs a move of a file or a folder. */
export function packMove(outPath: string, o: PackMoveOptions): Promise<PackWritten> {
  const header = baseHeader("move", o);
  header.newPath = o.newPath;
  if (o.folder) header.folder = true;
  return writePack(outPath, header);
}

/** Options of {@link packDelete}. */
export interface PackDeleteOptions extends PackCommon {
  /** `path` is a folder: delete everything under it. */
  folder?: boolean;
}

/** Packs a delete of a file or a folder (it stays restorable for the job's retention). */
export function packDelete(outPath: string, o: PackDeleteOptions): Promise<PackWritten> {
  const header = baseHeader("delete", o);
  if (o.folder) header.folder = true;
  return writePack(outPath, header);
}
