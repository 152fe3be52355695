/**
 * Portable twin of the native delta module (native/src/delta.rs): block signatures, deltas
 * and patches in the wire format of docs/formats/delta.md. Output must be byte-identical to
 * the native one; every rule (block size, candidate order, COPY merging, the DATA cap) is
 * mirrored from the Rust code.
 *
 * @module
 */

import { open, rename, rm, stat } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { CncopError } from "../../core/errors.ts";
import type { DeltaStats } from "../types.ts";
import { newBlake3, readChunks, xxh3Bytes } from "./hash.ts";
import { openSource } from "./source_open.ts";

const SIG_MAGIC = [0x43, 0x4e, 0x53, 0x47]; // "CNSG"
const DELTA_MAGIC = [0x43, 0x4e, 0x44, 0x4c]; // "CNDL"
const VERSION = 1;
const STRONG_LEN = 16;
const SIG_HEADER_LEN = 20;
const DELTA_HEADER_LEN = 20;
/** Largest DATA instruction; longer literal runs are split. */
export const MAX_LITERAL = 1 << 20;
const MIN_BLOCK = 64;
const MAX_BLOCK = 1 << 24;
const OP_END = 0;
const OP_COPY = 1;
const OP_DATA = 2;
const CHAR_OFFSET = 31;

/**
 * Block size for a base of `size` bytes (same rule as the native core): the smallest power
 * of two from 128 B to 64 KiB that is at least sqrt(size) / 24.
 */
export function chooseBlockSize(size: number): number {
  let b = 128;
  while (b < 65536 && (24 * b) * (24 * b) < size) b *= 2;
  return b;
}

/** The weak checksum of a whole block, as [a, b] 16-bit halves. */
function weakOf(data: Uint8Array, from: number, to: number): [number, number] {
  let a = 0;
  let b = 0;
  for (let i = from; i < to; i++) {
    a = (a + data[i]! + CHAR_OFFSET) & 0xffff;
    b = (b + a) & 0xffff;
  }
  return [a, b];
}

function digest(a: number, b: number): number {
  return (a | (b << 16)) >>> 0;
}

function equal16(x: Uint8Array, xOff: number, y: Uint8Array): boolean {
  for (let i = 0; i < STRONG_LEN; i++) if (x[xOff + i] !== y[i]) return false;
  return true;
}

function fail(message: string, cause?: unknown): never {
  throw new CncopError(message, cause === undefined ? {} : { cause });
}

function tmpPath(p: string): string {
  return join(
    dirname(p),
    `${basename(p)}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`,
  );
}

/** Buffered writer over a file handle. */
class Out {
  fh: FileHandle;
  chunks: Uint8Array[] = [];
  pending = 0;
  written = 0;
  constructor(fh: FileHandle) {
    this.fh = fh;
  }
  put(b: Uint8Array): void {
    this.chunks.push(b);
    this.pending += b.length;
    this.written += b.length;
  }
  async flush(force = false): Promise<void> {
    if (this.pending === 0 || (!force && this.pending < 1 << 20)) return;
    const all = Buffer.concat(this.chunks);
    this.chunks = [];
    this.pending = 0;
    let off = 0;
    while (off < all.length) {
      const { bytesWritten } = await this.fh.write(all, off, all.length - off);
      off += bytesWritten;
    }
  }
}

/** Renames tmp over dst after `work` succeeds; removes tmp when it fails. */
async function viaTmp<T>(dst: string, work: (tmp: string) => Promise<T>): Promise<T> {
  const tmp = tmpPath(dst);
  try {
    const v = await work(tmp);
    await rename(tmp, dst);
    return v;
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

function le32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
}

function le64(v: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  return b;
}

/** Writes the signature of `basePath` to `sigPath`; `blockSize` 0 chooses it. */
export async function signature(basePath: string, sigPath: string, blockSize = 0): Promise<void> {
  const size = (await stat(basePath)).size;
  const bs = blockSize === 0 ? chooseBlockSize(size) : blockSize;
  if (!(bs >= MIN_BLOCK && bs <= MAX_BLOCK)) {
    fail(`signature: block size ${bs} out of range ${MIN_BLOCK}..${MAX_BLOCK}`);
  }
  await viaTmp(sigPath, async (tmp) => {
    const fh = await open(tmp, "w");
    try {
      const out = new Out(fh);
      const header = new Uint8Array(SIG_HEADER_LEN);
      header.set(SIG_MAGIC, 0);
      header[4] = VERSION;
      header[5] = STRONG_LEN;
      header.set(le32(bs), 8);
      header.set(le64(size), 12);
      out.put(header);
      const pending = new Uint8Array(bs);
      let pendingLen = 0;
      let total = 0;
      let recs: Uint8Array[] = [];
      const emit = (data: Uint8Array, from: number, to: number) => {
        const rec = new Uint8Array(4 + STRONG_LEN);
        const [a, b] = weakOf(data, from, to);
        new DataView(rec.buffer).setUint32(0, digest(a, b), true);
        rec.set(xxh3Bytes(data.subarray(from, to)), 4);
        recs.push(rec);
      };
      await readChunks(basePath, (c) => {
        total += c.length;
        let i = 0;
        if (pendingLen > 0) {
          const take = Math.min(bs - pendingLen, c.length);
          pending.set(c.subarray(0, take), pendingLen);
          pendingLen += take;
          i = take;
          if (pendingLen === bs) {
            emit(pending, 0, bs);
            pendingLen = 0;
          }
        }
        for (; i + bs <= c.length; i += bs) emit(c, i, i + bs);
        pending.set(c.subarray(i), pendingLen);
        pendingLen += c.length - i;
        for (const r of recs) out.put(r);
        recs = [];
      });
      if (pendingLen > 0) emit(pending, 0, pendingLen);
      for (const r of recs) out.put(r);
      if (total !== size) {
        fail(`signature: ${basePath} changed size while being read (${size} -> ${total})`);
      }
      await out.flush(true);
    } finally {
      await fh.close();
    }
  });
}

interface Signature {
  blockSize: number;
  baseSize: number;
  weak: Uint32Array;
  /** STRONG_LEN bytes per block. */
  strong: Uint8Array;
}

function parseSignature(data: Uint8Array, path: string): Signature {
  const bad = (m: string): never => fail(`${path}: ${m}`);
  if (data.length < SIG_HEADER_LEN || SIG_MAGIC.some((b, i) => data[i] !== b)) {
    bad("not a cncop signature (bad magic)");
  }
  if (data[4] !== VERSION) bad(`unsupported signature version ${data[4]}`);
  if (data[5] !== STRONG_LEN) bad(`unsupported strong hash length ${data[5]}`);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const blockSize = dv.getUint32(8, true);
  const baseSize = Number(dv.getBigUint64(12, true));
  if (!(blockSize >= MIN_BLOCK && blockSize <= MAX_BLOCK)) bad(`bad block size ${blockSize}`);
  const n = Math.ceil(baseSize / blockSize);
  const rec = 4 + STRONG_LEN;
  if (data.length - SIG_HEADER_LEN !== n * rec) {
    bad(`truncated or oversized: ${data.length - SIG_HEADER_LEN} bytes of records for ${n} blocks`);
  }
  const weak = new Uint32Array(n);
  const strong = new Uint8Array(n * STRONG_LEN);
  for (let i = 0; i < n; i++) {
    const off = SIG_HEADER_LEN + i * rec;
    weak[i] = dv.getUint32(off, true);
    strong.set(data.subarray(off + 4, off + rec), i * STRONG_LEN);
  }
  return { blockSize, baseSize, weak, strong };
}

/** Delta instruction writer: merges adjacent COPYs, splits DATA at MAX_LITERAL. */
class Emitter {
  out: Out;
  copyOff = -1;
  copyLen = 0;
  lit = new Uint8Array(MAX_LITERAL);
  litLen = 0;
  copied = 0;
  literal = 0;
  constructor(out: Out) {
    this.out = out;
  }
  flushCopy(): void {
    if (this.copyOff < 0) return;
    const ins = new Uint8Array(17);
    const dv = new DataView(ins.buffer);
    ins[0] = OP_COPY;
    dv.setBigUint64(1, BigInt(this.copyOff), true);
    dv.setBigUint64(9, BigInt(this.copyLen), true);
    this.out.put(ins);
    this.copyOff = -1;
  }
  flushLit(): void {
    if (this.litLen === 0) return;
    const ins = new Uint8Array(5 + this.litLen);
    ins[0] = OP_DATA;
    new DataView(ins.buffer).setUint32(1, this.litLen, true);
    ins.set(this.lit.subarray(0, this.litLen), 5);
    this.out.put(ins);
    this.litLen = 0;
  }
  copy(off: number, len: number): void {
    this.flushLit();
    this.copied += len;
    if (this.copyOff >= 0 && this.copyOff + this.copyLen === off) {
      this.copyLen += len;
    } else {
      this.flushCopy();
      this.copyOff = off;
      this.copyLen = len;
    }
  }
  literalByte(b: number): void {
    if (this.copyOff >= 0) this.flushCopy();
    this.literal++;
    this.lit[this.litLen++] = b;
    if (this.litLen === MAX_LITERAL) this.flushLit();
  }
  literalBytes(data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) this.literalByte(data[i]!);
  }
}

/** Writes the delta of `newPath` against the signature `sigPath` to `deltaPath`. */
export async function delta(
  sigPath: string,
  newPath: string,
  deltaPath: string,
): Promise<DeltaStats> {
  const sfh = await open(sigPath, "r");
  let sig: Signature;
  try {
    sig = parseSignature(await sfh.readFile(), sigPath);
  } finally {
    await sfh.close();
  }
  const nfh = await openSource(newPath);
  try {
    return await viaTmp(deltaPath, async (tmp) => {
      const fh = await open(tmp, "w");
      try {
        return await deltaTo(sig, nfh, new Out(fh));
      } finally {
        await fh.close();
      }
    });
  } finally {
    await nfh.close();
  }
}

async function deltaTo(s: Signature, file: FileHandle, out: Out): Promise<DeltaStats> {
  const bs = s.blockSize;
  const n = s.weak.length;
  const lastLen = n === 0 ? 0 : s.baseSize - (n - 1) * bs;
  const full = lastLen === bs ? n : Math.max(0, n - 1);
  const table = new Map<number, number[]>();
  for (let i = 0; i < full; i++) {
    const w = s.weak[i]!;
    const list = table.get(w);
    if (list) list.push(i);
    else table.set(w, [i]);
  }
  const short = lastLen > 0 && lastLen < bs ? n - 1 : -1;

  const em = new Emitter(out);
  const header = new Uint8Array(DELTA_HEADER_LEN);
  header.set(DELTA_MAGIC, 0);
  header[4] = VERSION;
  header.set(le32(bs), 8);
  header.set(le64(s.baseSize), 12);
  out.put(header);

  const hasher = await newBlake3();
  const cap = Math.max(8 << 20, bs * 4);
  let buf = new Uint8Array(cap);
  let len = 0;
  let start = 0;
  let eof = false;
  let total = 0;
  const ensure = async (need: number) => {
    if (len - start >= need || eof) return;
    buf.copyWithin(0, start, len);
    len -= start;
    start = 0;
    while (len < cap && !eof) {
      const { bytesRead } = await file.read(buf, len, cap - len, null);
      if (bytesRead === 0) {
        eof = true;
      } else {
        hasher.update(buf.subarray(len, len + bytesRead));
        len += bytesRead;
        total += bytesRead;
      }
    }
    await out.flush();
  };

  let rolling = false;
  let a = 0;
  let b = 0;
  let expected = -1;
  for (;;) {
    await ensure(bs + 1);
    // Inner loop runs synchronously over what is buffered.
    while (len - start >= bs && full > 0 && (len - start > bs || eof)) {
      const st = start;
      if (!rolling) {
        [a, b] = weakOf(buf, st, st + bs);
        rolling = true;
      }
      const weak = digest(a, b);
      const cands = table.get(weak);
      if (cands !== undefined) {
        const sh = xxh3Bytes(buf.subarray(st, st + bs));
        let chosen = -1;
        if (expected >= 0 && expected < full && s.weak[expected] === weak) {
          if (equal16(s.strong, expected * STRONG_LEN, sh)) chosen = expected;
        }
        if (chosen < 0) {
          for (const i of cands) {
            if (equal16(s.strong, i * STRONG_LEN, sh)) {
              chosen = i;
              break;
            }
          }
        }
        if (chosen >= 0) {
          em.copy(chosen * bs, bs);
          start += bs;
          expected = chosen + 1;
          rolling = false;
          continue;
        }
      }
      const outb = buf[st]!;
      em.literalByte(outb);
      start += 1;
      if (len - st > bs) {
        a = (a + buf[st + bs]! - outb) & 0xffff;
        b = (b + a - bs * (outb + CHAR_OFFSET)) & 0xffff;
      } else {
        rolling = false;
      }
    }
    if (!eof && full > 0) continue; // need more input
    if (!eof) {
      const avail = len - start;
      // No full blocks in the base: nothing can match before the tail.
      const give = avail - bs;
      em.literalBytes(buf.subarray(start, start + give));
      start += give;
      continue;
    }
    // Tail: only the base's short last block can match, and only exactly at the end.
    const tail = buf.subarray(start, len);
    let litEnd = tail.length;
    let tailCopy = false;
    if (short >= 0 && tail.length >= lastLen) {
      const from = tail.length - lastLen;
      const [ta, tb] = weakOf(tail, from, tail.length);
      if (
        digest(ta, tb) === s.weak[short] &&
        equal16(s.strong, short * STRONG_LEN, xxh3Bytes(tail.subarray(from)))
      ) {
        litEnd = from;
        tailCopy = true;
      }
    }
    em.literalBytes(tail.subarray(0, litEnd));
    if (tailCopy) em.copy(short * bs, lastLen);
    break;
  }
  em.flushCopy();
  em.flushLit();
  const hash = hasher.digest("binary");
  const end = new Uint8Array(41);
  end[0] = OP_END;
  end.set(le64(total), 1);
  end.set(hash, 9);
  out.put(end);
  await out.flush(true);
  buf = new Uint8Array(0);
  return {
    newSize: total,
    deltaSize: out.written,
    copiedBytes: em.copied,
    literalBytes: em.literal,
    newBlake3: Buffer.from(hash).toString("hex"),
  };
}

/** Sequential reader with exact reads, for the delta stream. */
class Reader {
  fh: FileHandle;
  buf = new Uint8Array(1 << 20);
  pos = 0;
  len = 0;
  constructor(fh: FileHandle) {
    this.fh = fh;
  }
  /** Reads up to `want` bytes into dst at offset; 0 at EOF. */
  async read(dst: Uint8Array, off: number, want: number): Promise<number> {
    if (this.pos === this.len) {
      const { bytesRead } = await this.fh.read(this.buf, 0, this.buf.length, null);
      this.pos = 0;
      this.len = bytesRead;
      if (bytesRead === 0) return 0;
    }
    const n = Math.min(want, this.len - this.pos);
    dst.set(this.buf.subarray(this.pos, this.pos + n), off);
    this.pos += n;
    return n;
  }
  async exact(n: number, what: string, dst = new Uint8Array(n)): Promise<Uint8Array> {
    let got = 0;
    while (got < n) {
      const r = await this.read(dst, got, n - got);
      if (r === 0) fail(`patch: malformed delta: truncated ${what}`);
      got += r;
    }
    return dst.subarray(0, n);
  }
}

/**
 * Writes `outPath` = base + delta, verified against `expectedBlake3`; throws (leaving no
 * `outPath`) on mismatch, a COPY past the base's end, or a malformed delta.
 */
export async function patch(
  basePath: string,
  deltaPath: string,
  outPath: string,
  expectedBlake3: string,
): Promise<void> {
  const dfh = await open(deltaPath, "r");
  try {
    const d = new Reader(dfh);
    const header = await d.exact(DELTA_HEADER_LEN, "header");
    if (DELTA_MAGIC.some((x, i) => header[i] !== x)) {
      fail("patch: malformed delta: not a cncop delta (bad magic)");
    }
    if (header[4] !== VERSION) fail(`patch: unsupported delta version ${header[4]}`);
    const baseSize = Number(new DataView(header.buffer, header.byteOffset).getBigUint64(12, true));
    const bfh = await open(basePath, "r");
    try {
      const actual = (await bfh.stat()).size;
      if (actual !== baseSize) {
        fail(`patch: base is ${actual} bytes but the delta was made against ${baseSize} bytes`);
      }
      await viaTmp(outPath, async (tmp) => {
        const ofh = await open(tmp, "w");
        try {
          await patchTo(d, bfh, baseSize, new Out(ofh), expectedBlake3);
          await ofh.sync();
        } finally {
          await ofh.close();
        }
      });
    } finally {
      await bfh.close();
    }
  } finally {
    await dfh.close();
  }
}

async function patchTo(
  d: Reader,
  base: FileHandle,
  baseSize: number,
  out: Out,
  expected: string,
): Promise<void> {
  const hasher = await newBlake3();
  let written = 0;
  for (;;) {
    const op = (await d.exact(1, "instruction"))[0];
    if (op === OP_COPY) {
      const a = await d.exact(16, "COPY");
      const dv = new DataView(a.buffer, a.byteOffset, 16);
      const off = dv.getBigUint64(0, true);
      const len = dv.getBigUint64(8, true);
      if (off + len > BigInt(baseSize)) {
        fail(
          `patch: COPY past the end of the base (offset ${off} + length ${len} > size ${baseSize})`,
        );
      }
      let pos = Number(off);
      let left = Number(len);
      while (left > 0) {
        const chunk = new Uint8Array(Math.min(left, 1 << 20));
        const { bytesRead } = await base.read(chunk, 0, chunk.length, pos);
        if (bytesRead === 0) fail("patch: base shrank while patching");
        const got = chunk.subarray(0, bytesRead);
        hasher.update(got);
        out.put(got);
        pos += bytesRead;
        left -= bytesRead;
      }
      written += Number(len);
    } else if (op === OP_DATA) {
      const a = await d.exact(4, "DATA");
      const len = new DataView(a.buffer, a.byteOffset, 4).getUint32(0, true);
      if (len === 0 || len > MAX_LITERAL) fail(`patch: malformed delta: DATA length ${len}`);
      const data = await d.exact(len, "DATA");
      hasher.update(data);
      out.put(data);
      written += len;
    } else if (op === OP_END) {
      const a = await d.exact(40, "END");
      const size = Number(new DataView(a.buffer, a.byteOffset, 8).getBigUint64(0, true));
      if (size !== written) {
        fail(`patch: malformed delta: END says ${size} bytes, instructions gave ${written}`);
      }
      if ((await d.read(new Uint8Array(1), 0, 1)) !== 0) {
        fail("patch: malformed delta: data after END");
      }
      const got = hasher.digest("binary");
      const hex = Buffer.from(got).toString("hex");
      if (!Buffer.from(got).equals(a.subarray(8, 40))) {
        fail(`patch: result BLAKE3 ${hex} does not match the delta's recorded hash`);
      }
      if (hex !== expected.toLowerCase()) {
        fail(`patch: result BLAKE3 ${hex} does not match expected ${expected}`);
      }
      await out.flush(true);
      return;
    } else {
      fail(`patch: malformed delta: unknown instruction 0x${op!.toString(16).padStart(2, "0")}`);
    }
    await out.flush();
  }
}
