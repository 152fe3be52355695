/**
 * Reads and verifies pack instruction files (docs/formats/pack.md). Streams: memory stays
 * bounded (one frame of at most 4 MiB, a zstd window of at most 8 MiB) whatever the input.
 * A truncated, corrupted, oversized or hostile pack is rejected with a
 * {@link PackRejectedError} and leaves no body file behind.
 *
 * @example
 * ```ts
 * const headers = await readPackEntries("/spool/0001.pack", { bodyTo: (_h, i) => `/tmp/b${i}` });
 * ```
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { createReadStream, writeFileSync } from "node:fs";
import { open, rm, writeFile } from "node:fs/promises";
import { PackRejectedError } from "../core/errors.ts";
import { native } from "../native/mod.ts";
import {
  DEFAULT_MAX_BODY,
  MAX_ENTRIES,
  MAX_FRAME_BYTES,
  MAX_HEADER_BYTES,
  PACK_MAGIC,
  type PackHeader,
  READABLE_FORMATS,
  TRAILER_BYTES,
  validateHeader,
  ZSTD_WINDOW_LOG_MAX,
} from "./pack_format.ts";

/**
 * Exact-length reads over a chunked byte stream, hashing what it hands out. The hash takes
 * a chunk's bytes in one update when the reader leaves the chunk (or at {@link digest}),
 * not one per read: a pack of small entries is hundreds of thousands of reads.
 */
class ByteReader {
  #it: AsyncIterator<Uint8Array>;
  #buf: Uint8Array = new Uint8Array(0);
  #pos = 0;
  /** Where in `#buf` the bytes not yet hashed begin. */
  #hashedTo = 0;
  #done = false;
  #hash = createHash("sha256");
  #digested = false;
  /** Bytes handed out so far: the position in the pack of what is read next. */
  offset = 0;
  constructor(src: AsyncIterable<Uint8Array>) {
    this.#it = src[Symbol.asyncIterator]();
  }
  #hashRead(): void {
    if (this.#digested) return;
    if (this.#pos > this.#hashedTo) {
      this.#hash.update(this.#buf.subarray(this.#hashedTo, this.#pos));
    }
    this.#hashedTo = this.#pos;
  }
  async #fill(): Promise<boolean> {
    while (this.#pos >= this.#buf.length) {
      if (this.#done) return false;
      this.#hashRead();
      const r = await this.#it.next();
      if (r.done) {
        this.#done = true;
        return false;
      }
      this.#buf = r.value;
      this.#pos = 0;
      this.#hashedTo = 0;
    }
    return true;
  }
  /** The SHA-256 of every byte read so far; reads after it are not hashed. */
  digest(): Buffer {
    this.#hashRead();
    this.#digested = true;
    return this.#hash.digest();
  }
  /**
   * The next n bytes when the current chunk holds them all, as a view of it, else undefined
   * (then {@link read}): most reads of a pack of small entries are served here, without a
   * promise each.
   */
  take(n: number): Uint8Array | undefined {
    if (n <= 0 || this.#buf.length - this.#pos < n) return undefined;
    const view = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    this.offset += n;
    return view;
  }
  /**
   * Reads exactly n bytes or throws "truncated". Bytes within one chunk of the source come
   * back as a view of it, not a copy (a pack of thousands of small entries is mostly that).
   */
  async read(n: number, what: string): Promise<Uint8Array> {
    if (n > 0 && (await this.#fill()) && this.#buf.length - this.#pos >= n) {
      return this.take(n)!;
    }
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      if (!(await this.#fill())) {
        throw new PackRejectedError(`pack is truncated (in the ${what})`);
      }
      const take = Math.min(n - got, this.#buf.length - this.#pos);
      out.set(this.#buf.subarray(this.#pos, this.#pos + take), got);
      this.#pos += take;
      this.offset += take;
      got += take;
    }
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

/** Reads the magic; returns the format version. */
async function readMagic(r: ByteReader): Promise<number> {
  const magic = await r.read(PACK_MAGIC.length, "magic");
  for (let i = 0; i < PACK_MAGIC.length - 1; i++) {
    if (magic[i] !== PACK_MAGIC[i]) throw new PackRejectedError("not a cncop pack file");
  }
  const version = magic[PACK_MAGIC.length - 1]!;
  if (!READABLE_FORMATS.includes(version)) {
    throw new PackRejectedError(
      `pack format version ${version} is not supported (this reads ${READABLE_FORMATS.join(", ")})`,
    );
  }
  return version;
}

/** Strict UTF-8 (one decoder for every header: a pack has thousands). */
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Reads an entry's header whose length `hlen` was read already. */
async function readHeaderBody(
  r: ByteReader,
  hlen: number,
  maxBody: number,
  format: number,
): Promise<PackHeader> {
  if (hlen === 0 || hlen > MAX_HEADER_BYTES) {
    throw new PackRejectedError(`pack header length ${hlen} is out of range`);
  }
  const hbytes = r.take(hlen) ?? await r.read(hlen, "header");
  let raw: unknown;
  try {
    raw = JSON.parse(utf8.decode(hbytes));
  } catch {
    throw new PackRejectedError("pack header is not valid JSON");
  }
  return validateHeader(raw, maxBody, format);
}

function toIterable(source: string | AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  return typeof source === "string"
    ? (createReadStream(source, { highWaterMark: 1 << 20 }) as AsyncIterable<Uint8Array>)
    : source;
}

/**
 * Reads only the first entry's header of a pack (validated; the checksum is not checked).
 *
 * @throws {PackRejectedError}
 */
export async function readPackHeader(
  source: string | AsyncIterable<Uint8Array>,
  maxBodySize = DEFAULT_MAX_BODY,
): Promise<PackHeader> {
  const r = new ByteReader(toIterable(source));
  try {
    const format = await readMagic(r);
    const hlen = u32(await r.read(4, "header length"));
    return await readHeaderBody(r, hlen, maxBodySize, format);
  } finally {
    await r.close();
  }
}

/** Options of {@link readPackEntries}. */
export interface ReadEntriesOptions {
  /** Where to write entry `index`'s decompressed body; undefined discards it. */
  bodyTo?: (header: PackHeader, index: number) => string | undefined;
  /** Largest declared body accepted per entry. @default 64 GiB */
  maxBodySize?: number;
  /** Most entries accepted. @default MAX_ENTRIES */
  maxEntries?: number;
  /** For an add: check the body's size and BLAKE3 against the header. @default true */
  verifyContent?: boolean;
  /** fsync each body file before resolving. @default true */
  sync?: boolean;
  /**
   * Add bodies that came in one frame of at most 4 MiB and that `wants` says yes to are
   * not written to a file: they are verified in parallel batches off the JS thread and,
   * once the whole pack is sound, handed to `take` as where their frame lies in the pack
   * (compressed as `header.compression` says), in pack order.
   */
  frames?: {
    wants: (header: PackHeader) => boolean;
    take: (header: PackHeader, index: number, frame: FrameAt) => void;
  };
  /** BLAKE3 hex of a buffer. @default the native core's */
  blake3?: (data: Uint8Array) => string;
}

/** An entry body up to this size in one frame is decompressed in one call. */
const ONE_SHOT_MAX = 4 * 1024 * 1024;

/**
 * Reads a whole pack: validates each entry's header, decompresses each body (into
 * `bodyTo(header, index)` when given) bounded by its declared size, checks the trailing
 * SHA-256 and, for an add, the content's size and BLAKE3. Resolves to the headers only
 * when all of it holds; on rejection no body file is left behind.
 *
 * @throws {PackRejectedError} on a truncated, corrupted, oversized or hostile pack.
 */
export async function readPackEntries(
  source: string | AsyncIterable<Uint8Array>,
  options: ReadEntriesOptions = {},
): Promise<PackHeader[]> {
  const r = new ByteReader(toIterable(source));
  const written: string[] = [];
  const headers: PackHeader[] = [];
  const maxBody = options.maxBodySize ?? DEFAULT_MAX_BODY;
  const maxEntries = options.maxEntries ?? MAX_ENTRIES;
  const deferred = new FrameBatches();
  try {
    const format = await readMagic(r);
    for (;;) {
      const hlen = u32(r.take(4) ?? await r.read(4, "header length"));
      if (hlen === 0 && format >= 2 && headers.length > 0) break; // end of entries
      if (headers.length >= maxEntries) {
        throw new PackRejectedError(`pack has more than ${maxEntries} entries`);
      }
      const header = await readHeaderBody(r, hlen, maxBody, format);
      if (headers.length > 0 && header.job !== headers[0]!.job) {
        throw new PackRejectedError("pack entries are for different jobs");
      }
      const bodyTo = options.bodyTo?.(header, headers.length);
      if (bodyTo !== undefined) written.push(bodyTo);
      const how = await readBody(r, header, headers.length, bodyTo, options, deferred);
      if (how === "deferred" && bodyTo !== undefined) written.pop();
      headers.push(header);
      if (format === 1) break; // one entry, the trailer follows
    }
    const expected = r.digest();
    const trailer = await r.read(TRAILER_BYTES, "checksum");
    if (!timingSafeEqual(expected, trailer)) {
      throw new PackRejectedError("pack checksum does not match (the file is corrupt)");
    }
    if (!(await r.atEnd())) throw new PackRejectedError("pack has bytes after its checksum");
    for (const d of await deferred.verified()) options.frames!.take(d.header, d.index, d.at);
    if (options.sync !== false) {
      for (const p of written) {
        const fh = await open(p, "r+");
        try {
          await fh.sync();
        } finally {
          await fh.close();
        }
      }
    }
    return headers;
  } catch (err) {
    await deferred.settled();
    for (const p of written) await rm(p, { force: true });
    throw err;
  } finally {
    await r.close();
  }
}

/** Where an entry's body frame lies in the pack file: its first byte, and how many. */
export interface FrameAt {
  offset: number;
  length: number;
}

/** A deferred body: its entry, and where its frame lies. */
interface Deferred {
  header: PackHeader;
  index: number;
  at: FrameAt;
}

/**
 * Deferred one-frame bodies, verified natively in batches while the rest is read; a
 * batch's frames are let go once verified, so memory stays bounded by the batches running.
 */
class FrameBatches {
  #batch: (Deferred & { frame: Uint8Array })[] = [];
  #running: Promise<Deferred[]>[] = [];

  add(header: PackHeader, index: number, frame: Uint8Array, offset: number): void {
    this.#batch.push({ header, index, frame, at: { offset, length: frame.length } });
    if (this.#batch.length >= 256) this.#start();
  }

  #start(): void {
    const batch = this.#batch;
    this.#batch = [];
    const checks = batch.map((d) => ({
      frame: d.frame,
      zstd: d.header.compression === "zstd",
      size: d.header.bodySize,
      blake3: d.header.hash,
    }));
    const verified = native.verifyFrames(checks, ZSTD_WINDOW_LOG_MAX).then((problems) => {
      const bad = problems.findIndex((p) => p !== "");
      if (bad >= 0) throw new PackRejectedError(`pack ${problems[bad]}`);
      return batch.map(({ header, index, at }) => ({ header, index, at }));
    });
    // Handled here, reported by verified(): a rejection while the rest of the pack is still
    // being read must not be an unhandled one (it would end the process).
    verified.catch(() => {});
    this.#running.push(verified);
  }

  /** Every deferred body, in order, once all are verified. */
  async verified(): Promise<Deferred[]> {
    if (this.#batch.length) this.#start();
    return (await Promise.all(this.#running)).flat();
  }

  /** Waits for running batches (after a rejection) so none outlives the read. */
  async settled(): Promise<void> {
    await Promise.allSettled(this.#running);
  }
}

/** Reads the body frames of one entry, verifies them and writes them to `bodyTo`. */
async function readBody(
  r: ByteReader,
  header: PackHeader,
  index: number,
  bodyTo: string | undefined,
  options: ReadEntriesOptions,
  deferred: FrameBatches,
): Promise<"written" | "deferred"> {
  const verify = header.kind === "add" && options.verifyContent !== false;
  const frameLength = async () => {
    const len = u32(r.take(4) ?? await r.read(4, "frame length"));
    if (len > MAX_FRAME_BYTES) {
      throw new PackRejectedError(`pack frame of ${len} bytes is too large`);
    }
    return len;
  };
  if (header.bodySize === 0) {
    // Nothing to decompress: the end frame must follow at once.
    if ((await frameLength()) !== 0) {
      throw new PackRejectedError("pack with an empty body has body frames");
    }
    if (bodyTo !== undefined) await writeFile(bodyTo, new Uint8Array(0), { mode: 0o600 });
    return "written";
  }
  const firstLen = await frameLength();
  if (firstLen === 0) {
    throw new PackRejectedError(`pack body is 0 bytes, its header declares ${header.bodySize}`);
  }
  const firstAt = r.offset;
  const first = r.take(firstLen) ?? await r.read(firstLen, "body");
  const secondLen = await frameLength();
  if (secondLen === 0 && header.bodySize <= ONE_SHOT_MAX) {
    if (verify && options.frames?.wants(header)) {
      deferred.add(header, index, first, firstAt);
      return "deferred";
    }
    // The common small entry: one call, no stream machinery.
    let body: Uint8Array = first;
    if (header.compression === "zstd") {
      try {
        body = native.zstdDecompress(first, header.bodySize, ZSTD_WINDOW_LOG_MAX);
      } catch (err) {
        throw new PackRejectedError(
          `pack body is corrupt or larger than its declared ${header.bodySize} bytes: ${
            (err as Error).message
          }`,
          { cause: err },
        );
      }
    }
    if (body.length !== header.bodySize) {
      throw new PackRejectedError(
        `pack body is ${body.length} bytes, its header declares ${header.bodySize}`,
      );
    }
    if (verify) {
      const hash = (options.blake3 ?? native.blake3)(body);
      if (hash !== header.hash) {
        throw new PackRejectedError("pack content does not match its header's hash");
      }
    }
    // Synchronous: a small write costs less than a trip through the thread pool.
    if (bodyTo !== undefined) writeFileSync(bodyTo, body, { mode: 0o600 });
    return "written";
  }
  // Decompressed, hashed and written (when kept) in one pass by the native core.
  const w = await native.inflateStart(
    bodyTo,
    header.compression === "zstd",
    header.bodySize,
    ZSTD_WINDOW_LOG_MAX,
  );
  let body: { blake3: string; size: number };
  try {
    await w.write(first);
    for (let len = secondLen; len !== 0; len = await frameLength()) {
      await w.write(await r.read(len, "body"));
    }
    body = await w.finish();
  } catch (err) {
    w.abort();
    const bad = /EPACK: (.*)/.exec((err as Error).message);
    if (bad) throw new PackRejectedError(`pack ${bad[1]}`, { cause: err });
    throw err; // a truncated pack, or our own I/O failing (disk full)
  }
  if (body.size !== header.bodySize) {
    throw new PackRejectedError(
      `pack body is ${body.size} bytes, its header declares ${header.bodySize}`,
    );
  }
  if (verify && body.blake3 !== header.hash) {
    throw new PackRejectedError("pack content does not match its header's hash");
  }
  return "written";
}

/** Options of {@link readPack}. */
export interface ReadPackOptions extends Omit<ReadEntriesOptions, "bodyTo" | "maxEntries"> {
  /** Write the decompressed body here (removed again when the pack is rejected). */
  bodyTo?: string;
}

/**
 * Reads a one-entry pack (see {@link readPackEntries}) and resolves to its header.
 *
 * @throws {PackRejectedError} also when the pack has more than one entry.
 */
export async function readPack(
  source: string | AsyncIterable<Uint8Array>,
  options: ReadPackOptions = {},
): Promise<PackHeader> {
  const { bodyTo, ...rest } = options;
  const headers = await readPackEntries(source, {
    ...rest,
    maxEntries: 1,
    bodyTo: bodyTo === undefined ? undefined : () => bodyTo,
  });
  return headers[0]!;
}
