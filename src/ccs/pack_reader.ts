/**
 * Reads and verifies pack instruction files (docs/formats/pack.md). Streams: memory stays
 * bounded (one frame of at most 4 MiB, a zstd window of at most 8 MiB) whatever the input.
 * A truncated, corrupted, oversized or hostile pack is rejected with a
 * {@link PackRejectedError} and leaves no body file behind.
 *
 * @example
 * ```ts
 * const header = await readPack("/spool/0001.pack", { bodyTo: "/tmp/body" });
 * ```
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { open, rm } from "node:fs/promises";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";
import { PackRejectedError } from "../core/errors.ts";
import {
  DEFAULT_MAX_BODY,
  MAX_FRAME_BYTES,
  MAX_HEADER_BYTES,
  PACK_MAGIC,
  type PackHeader,
  TRAILER_BYTES,
  validateHeader,
  ZSTD_WINDOW_LOG_MAX,
} from "./pack_format.ts";
import { newBlake3 } from "./pack_hash.ts";

/** Options of {@link readPack}. */
export interface ReadPackOptions {
  /** Write the decompressed body here (removed again when the pack is rejected). */
  bodyTo?: string;
  /** Largest declared body accepted. @default 64 GiB */
  maxBodySize?: number;
  /** For an add: check the body's size and BLAKE3 against the header. @default true */
  verifyContent?: boolean;
}

/** Exact-length reads over a chunked byte stream, hashing what it hands out. */
class ByteReader {
  #it: AsyncIterator<Uint8Array>;
  #buf: Uint8Array = new Uint8Array(0);
  #pos = 0;
  #done = false;
  hash = createHash("sha256");
  constructor(src: AsyncIterable<Uint8Array>) {
    this.#it = src[Symbol.asyncIterator]();
  }
  async #fill(): Promise<boolean> {
    while (this.#pos >= this.#buf.length) {
      if (this.#done) return false;
      const r = await this.#it.next();
      if (r.done) {
        this.#done = true;
        return false;
      }
      this.#buf = r.value;
      this.#pos = 0;
    }
    return true;
  }
  /** Reads exactly n bytes or throws "truncated". */
  async read(n: number, what: string, hashed = true): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      if (!(await this.#fill())) {
        throw new PackRejectedError(`pack is truncated (in the ${what})`);
      }
      const take = Math.min(n - got, this.#buf.length - this.#pos);
      out.set(this.#buf.subarray(this.#pos, this.#pos + take), got);
      this.#pos += take;
      got += take;
    }
    if (hashed) this.hash.update(out);
    return out;
  }
  async atEnd(): Promise<boolean> {
    return !(await this.#fill());
  }
  async close(): Promise<void> {
    await this.#it.return?.();
  }
}

function u32(b: Uint8Array): number {
  return ((b[0]! << 24) >>> 0) + (b[1]! << 16) + (b[2]! << 8) + b[3]!;
}

/** Reads magic and header from a reader. */
async function readHeaderFrom(r: ByteReader, maxBody: number): Promise<PackHeader> {
  const magic = await r.read(PACK_MAGIC.length, "magic");
  for (let i = 0; i < PACK_MAGIC.length - 1; i++) {
    if (magic[i] !== PACK_MAGIC[i]) throw new PackRejectedError("not a cncop pack file");
  }
  if (magic[PACK_MAGIC.length - 1] !== PACK_MAGIC[PACK_MAGIC.length - 1]) {
    throw new PackRejectedError(
      `pack format version ${magic[PACK_MAGIC.length - 1]} is not supported (this reads 1)`,
    );
  }
  const hlen = u32(await r.read(4, "header length"));
  if (hlen === 0 || hlen > MAX_HEADER_BYTES) {
    throw new PackRejectedError(`pack header length ${hlen} is out of range`);
  }
  const hbytes = await r.read(hlen, "header");
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(hbytes));
  } catch {
    throw new PackRejectedError("pack header is not valid JSON");
  }
  return validateHeader(raw, maxBody);
}

function toIterable(source: string | AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  return typeof source === "string"
    ? (createReadStream(source, { highWaterMark: 1 << 20 }) as AsyncIterable<Uint8Array>)
    : source;
}

/**
 * Reads only the header of a pack (validated; the checksum is not checked).
 *
 * @throws {PackRejectedError}
 */
export async function readPackHeader(
  source: string | AsyncIterable<Uint8Array>,
  maxBodySize = DEFAULT_MAX_BODY,
): Promise<PackHeader> {
  const r = new ByteReader(toIterable(source));
  try {
    return await readHeaderFrom(r, maxBodySize);
  } finally {
    await r.close();
  }
}

/**
 * Reads a whole pack: validates the header, decompresses the body (into `bodyTo` when
 * given) bounded by the declared size, checks the trailing SHA-256 and, for an add, the
 * content's size and BLAKE3. Resolves to the header only when all of it holds.
 *
 * @throws {PackRejectedError} on a truncated, corrupted, oversized or hostile pack.
 */
export async function readPack(
  source: string | AsyncIterable<Uint8Array>,
  options: ReadPackOptions = {},
): Promise<PackHeader> {
  const r = new ByteReader(toIterable(source));
  const { bodyTo } = options;
  try {
    const header = await readHeaderFrom(r, options.maxBodySize ?? DEFAULT_MAX_BODY);
    const hasher = header.kind === "add" && options.verifyContent !== false
      ? await newBlake3()
      : undefined;
    let produced = 0;
    const frames = async function* () {
      for (;;) {
        const len = u32(await r.read(4, "frame length"));
        if (len === 0) return;
        if (len > MAX_FRAME_BYTES) {
          throw new PackRejectedError(`pack frame of ${len} bytes is too large`);
        }
        yield await r.read(len, "body");
      }
    };
    const bounded = async function* (src: AsyncIterable<Uint8Array>) {
      for await (const chunk of src) {
        produced += chunk.length;
        if (produced > header.bodySize) {
          throw new PackRejectedError(
            `pack body expands beyond its declared ${header.bodySize} bytes`,
          );
        }
        hasher?.update(chunk);
        yield chunk;
      }
    };
    const sink = bodyTo !== undefined
      ? createWriteStream(bodyTo, { flags: "w", mode: 0o600 })
      : new Writable({ write: (_c, _e, cb) => cb() });
    let sinkError: unknown;
    sink.on("error", (e: Error) => (sinkError ??= e));
    try {
      if (header.bodySize === 0) {
        // Nothing to decompress: the end frame must follow at once.
        const len = u32(await r.read(4, "frame length"));
        if (len !== 0) throw new PackRejectedError("pack with an empty body has body frames");
        await new Promise<void>((res, rej) => sink.end((e?: Error | null) => (e ? rej(e) : res())));
      } else if (header.compression === "zstd") {
        await pipeline(
          frames,
          zlib.createZstdDecompress({
            params: { [zlib.constants.ZSTD_d_windowLogMax]: ZSTD_WINDOW_LOG_MAX },
          }),
          bounded,
          sink,
        );
      } else {
        await pipeline(frames, bounded, sink);
      }
    } catch (err) {
      if (err instanceof PackRejectedError) throw err;
      // Our own I/O failing (disk full, too many files) says nothing about the pack.
      if (sinkError !== undefined) throw sinkError;
      if (typeof (err as { syscall?: unknown }).syscall === "string") throw err;
      throw new PackRejectedError(`pack body is corrupt: ${(err as Error).message}`, {
        cause: err,
      });
    } finally {
      // Release the body file's descriptor on every path before anyone removes it.
      if (!sink.closed) {
        const closed = new Promise<void>((res) => sink.once("close", () => res()));
        if (!sink.writableFinished) sink.destroy();
        await closed;
      }
    }
    if (produced !== header.bodySize) {
      throw new PackRejectedError(
        `pack body is ${produced} bytes, its header declares ${header.bodySize}`,
      );
    }
    const expected = r.hash.digest();
    const trailer = await r.read(TRAILER_BYTES, "checksum", false);
    if (!timingSafeEqual(expected, trailer)) {
      throw new PackRejectedError("pack checksum does not match (the file is corrupt)");
    }
    if (!(await r.atEnd())) throw new PackRejectedError("pack has bytes after its checksum");
    if (hasher && hasher.digest() !== header.hash) {
      throw new PackRejectedError("pack content does not match its header's hash");
    }
    if (bodyTo !== undefined) {
      const fh = await open(bodyTo, "r+");
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
    return header;
  } catch (err) {
    if (bodyTo !== undefined) await rm(bodyTo, { force: true });
    throw err;
  } finally {
    await r.close();
  }
}
