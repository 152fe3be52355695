/**
 * Portable twin of the native `writeFilePack` (native/src/pack_file.rs): a one-entry pack of
 * a large file. The same pack and signature as the addon's, but for the zstd frames (the
 * runtime's zstd cuts them elsewhere); the signature is written in a second read.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { type FileHandle, open, rm, stat } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";
import type { FilePackOptions, FilePackWritten } from "../types.ts";
import { signature } from "./delta.ts";
import { newBlake3 } from "./hash.ts";
import { openSource } from "./source_open.ts";

const FRAME_BYTES = 1 << 20;

async function sameAsListed(o: FilePackOptions, when: string): Promise<void> {
  const st = await stat(o.source, { bigint: true });
  if (Number(st.size) !== o.size || String(st.mtimeNs) !== o.mtimeNs) {
    throw new Error(`ECHANGED: ${o.source} changed ${when} it was packed`);
  }
}

async function writeAll(fh: FileHandle, data: Uint8Array, at: number): Promise<void> {
  let off = 0;
  while (off < data.length) {
    off += (await fh.write(data, off, data.length - off, at + off)).bytesWritten;
  }
}

/** Writes the pack to `o.out` (fsynced); see {@link NativeCore.writeFilePack}. */
export async function writeFilePack(o: FilePackOptions): Promise<FilePackWritten> {
  await sameAsListed(o, "before");
  const fh = await open(o.out, "wx+", 0o600);
  try {
    let pos = 0;
    const put = async (b: Uint8Array) => {
      await writeAll(fh, b, pos);
      pos += b.length;
    };
    await put(o.prefix);
    const hasher = await newBlake3();
    let read = 0;
    let frame: Buffer[] = [];
    let frameBytes = 0;
    const emit = async () => {
      if (frameBytes === 0) return;
      const len = Buffer.alloc(4);
      len.writeUInt32BE(frameBytes);
      await put(len);
      await put(Buffer.concat(frame));
      frame = [];
      frameBytes = 0;
    };
    const counted = async function* () {
      const src = await openSource(o.source);
      try {
        for (;;) {
          // A new buffer each read: the compressor may still hold the last one.
          const buf = Buffer.allocUnsafe(1 << 20);
          const { bytesRead } = await src.read(buf, 0, buf.length, null);
          if (bytesRead === 0) return;
          const c = buf.subarray(0, bytesRead);
          read += c.length;
          if (read > o.size) throw new Error(`ECHANGED: ${o.source} grew while it was packed`);
          hasher.update(c);
          yield c;
        }
      } finally {
        await src.close();
      }
    };
    const frames = async (src: AsyncIterable<Buffer>) => {
      for await (const chunk of src) {
        for (let at = 0; at < chunk.length;) {
          const take = Math.min(chunk.length - at, FRAME_BYTES - frameBytes);
          frame.push(chunk.subarray(at, at + take));
          frameBytes += take;
          at += take;
          if (frameBytes >= FRAME_BYTES) await emit();
        }
      }
    };
    if (o.level > 0) {
      const z = zlib.createZstdCompress({
        params: { [zlib.constants.ZSTD_c_compressionLevel]: o.level },
      });
      await pipeline(counted, z, frames);
    } else await frames(counted());
    await emit();
    if (read !== o.size) {
      throw new Error(`ECHANGED: ${o.source} is ${read} bytes now, ${o.size} when it was listed`);
    }
    await sameAsListed(o, "while");
    await put(o.suffix);
    const blake3 = hasher.digest("hex");
    if (o.hashAt !== undefined) await writeAll(fh, Buffer.from(blake3), o.hashAt);
    const sha = createHash("sha256");
    const buf = Buffer.alloc(1 << 20);
    for (let at = 0; at < pos;) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, pos - at), at);
      sha.update(buf.subarray(0, bytesRead));
      at += bytesRead;
    }
    const digest = sha.digest();
    await put(digest);
    await fh.sync();
    await fh.close();
    if (o.sig !== undefined) await signature(o.source, o.sig, 0);
    return { bytes: pos, sha256: digest.toString("hex"), blake3 };
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(o.out, { force: true });
    throw err;
  }
}
