/**
 * Writes pack instruction files (docs/formats/pack.md). Streams the body through zstd, never
 * holding a whole file in memory; writes to a temp file, fsyncs and renames, so a pack on
 * disk is always complete.
 *
 * @example
 * ```ts
 * await packAdd("/spool/0001.pack", { job: "7", path: "docs/a.txt", source: "/data/docs/a.txt" });
 * ```
 *
 * @module
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, rename, rm, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";
import { CncopError } from "../core/errors.ts";
import {
  PACK_FORMAT,
  PACK_MAGIC,
  type PackCompression,
  type PackHeader,
  type PackKind,
  validateHeader,
} from "./pack_format.ts";
import { blake3FileHex, newBlake3 } from "./pack_hash.ts";

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
  /** zstd level, clamped to 1..9 so readers' window limit holds. @default 3 */
  level?: number;
}

/** What a written pack is. */
export interface PackWritten {
  path: string;
  header: PackHeader;
  /** Bytes of the pack file. */
  bytes: number;
  /** SHA-256 hex of the pack file without its trailer (= the trailer). */
  sha256: string;
}

function baseHeader(kind: PackKind, c: PackCommon): PackHeader {
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
    created: new Date().toISOString(),
  };
}

function mtimeString(v: string | bigint | number | undefined, fallbackMs: number): string {
  if (v === undefined) return String(BigInt(Math.round(fallbackMs * 1e6)));
  return typeof v === "number" ? String(BigInt(Math.round(v))) : String(v);
}

/**
 * Writes a pack with the given header; `bodyPath` (add: the content, update: the delta) is
 * streamed in. For an add, the content's BLAKE3 and size are checked while streaming.
 *
 * @throws {SourceChangedError} when an add's source no longer matches its header.
 * @throws {PackRejectedError} when the header is invalid.
 */
export async function writePack(
  outPath: string,
  header: PackHeader,
  bodyPath?: string,
  level = 3,
): Promise<PackWritten> {
  validateHeader(header, Number.MAX_SAFE_INTEGER);
  if (header.bodySize > 0 && bodyPath === undefined) {
    throw new CncopError("writePack: a body is declared but no body file given");
  }
  const tmp = `${outPath}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const fh = await open(tmp, "wx", 0o600);
  const sha = createHash("sha256");
  let bytes = 0;
  const put = async (data: Uint8Array) => {
    sha.update(data);
    bytes += data.length;
    let off = 0;
    while (off < data.length) {
      const { bytesWritten } = await fh.write(data, off, data.length - off);
      off += bytesWritten;
    }
  };
  try {
    const headerBytes = Buffer.from(JSON.stringify(header), "utf8");
    const len = Buffer.alloc(4);
    len.writeUInt32BE(headerBytes.length);
    await put(PACK_MAGIC);
    await put(len);
    await put(headerBytes);
    if (bodyPath !== undefined && header.bodySize > 0) {
      const hasher = header.kind === "add" ? await newBlake3() : undefined;
      let read = 0;
      const source = createReadStream(bodyPath, { highWaterMark: 1 << 20 });
      const counted = async function* (src: AsyncIterable<Buffer>) {
        for await (const chunk of src) {
          read += chunk.length;
          if (read > header.bodySize) break; // grew while packing; caught below
          hasher?.update(chunk);
          yield chunk;
        }
      };
      const frames = async (src: AsyncIterable<Buffer>) => {
        for await (const chunk of src) {
          const l = Buffer.alloc(4);
          l.writeUInt32BE(chunk.length);
          await put(l);
          await put(chunk);
        }
      };
      const lvl = Math.min(9, Math.max(1, Math.round(level)));
      if (header.compression === "zstd") {
        await pipeline(
          source,
          counted,
          zlib.createZstdCompress({
            params: { [zlib.constants.ZSTD_c_compressionLevel]: lvl },
            chunkSize: 256 * 1024,
          }),
          frames,
        );
      } else {
        await pipeline(source, counted, frames);
      }
      if (read !== header.bodySize) {
        throw new SourceChangedError(
          `${bodyPath} is ${read > header.bodySize ? "larger" : "smaller"} than when it was listed`,
        );
      }
      if (hasher && hasher.digest() !== header.hash) {
        throw new SourceChangedError(`${bodyPath} changed while it was packed (hash differs)`);
      }
    }
    await put(new Uint8Array(4)); // the end frame
    const digest = sha.digest();
    await fh.write(digest);
    bytes += digest.length;
    await fh.sync();
    await fh.close();
    await rename(tmp, outPath);
    await syncDir(dirname(outPath));
    return { path: outPath, header, bytes, sha256: digest.toString("hex") };
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
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
  /** Target mtime (ns); from the source's stat when absent. */
  mtimeNs?: string | bigint;
  /** Permission bits; from the source's stat when absent. */
  mode?: number;
  /** BLAKE3 hex of the content if already known (else computed first). */
  hash?: string;
  /** Size if already known (else from stat). */
  size?: number;
}

/**
 * Packs a whole file (pack-add).
 *
 * @throws {SourceChangedError} when the file changes while it is packed.
 */
export async function packAdd(outPath: string, o: PackAddOptions): Promise<PackWritten> {
  const st = await stat(o.source, { bigint: true });
  let hash = o.hash;
  let size = o.size ?? Number(st.size);
  if (hash === undefined) {
    const h = await blake3FileHex(o.source);
    hash = h.hash;
    size = h.size;
  }
  const header = baseHeader("add", o);
  header.size = size;
  header.bodySize = size;
  header.hash = hash;
  header.mtimeNs = o.mtimeNs !== undefined ? String(o.mtimeNs) : String(st.mtimeNs);
  header.mode = o.mode ?? Number(st.mode) & 0o7777;
  return writePack(outPath, header, o.source, o.level);
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
