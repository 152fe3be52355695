/**
 * Portable twin of the native zstd calls, through the runtime's `node:zlib` (same format;
 * slower per call, because each call builds a new context).
 *
 * @module
 */
import zlib from "node:zlib";
import { closeSync, fstatSync, readFileSync } from "node:fs";
import { openSourceSync } from "./source_open.ts";
import type { FileForPack, FrameCheck } from "../types.ts";
import { blake3 } from "./hash.ts";

/** One zstd frame of `data` at `level`. */
export function zstdCompress(data: Uint8Array, level: number): Uint8Array {
  return zlib.zstdCompressSync(data, {
    params: { [zlib.constants.ZSTD_c_compressionLevel]: level },
  });
}

/** Decompresses into at most `maxSize` bytes with a window of at most 2^`windowLogMax`. */
export function zstdDecompress(
  data: Uint8Array,
  maxSize: number,
  windowLogMax: number,
): Uint8Array {
  try {
    return zlib.zstdDecompressSync(data, {
      maxOutputLength: Math.max(1, maxSize),
      params: { [zlib.constants.ZSTD_d_windowLogMax]: windowLogMax },
    });
  } catch (err) {
    if ((err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
      throw new Error(`zstd output is larger than ${maxSize} bytes`);
    }
    throw err;
  }
}

/** Checks each frame: "" when it decodes to its size and BLAKE3, else what is wrong. */
export function verifyFrames(checks: FrameCheck[], windowLogMax: number): string[] {
  return checks.map((c) => {
    let body = c.frame;
    if (c.zstd) {
      try {
        body = zstdDecompress(c.frame, c.size, windowLogMax);
      } catch (err) {
        return `body is corrupt or larger than its declared ${c.size} bytes: ${
          (err as Error).message
        }`;
      }
    }
    if (body.length !== c.size) {
      return `body is ${body.length} bytes, its header declares ${c.size}`;
    }
    return blake3(body) === c.blake3 ? "" : "content does not match its header's hash";
  });
}

/** Reads, hashes and compresses each file; errors are per file. Writes no forks. */
export function readFilesForPack(paths: string[], level: number): FileForPack[] {
  return paths.map((p) => {
    let fd: number | undefined;
    try {
      fd = openSourceSync(p);
      const content = readFileSync(fd);
      const st = fstatSync(fd, { bigint: true });
      const frame = content.length > 0 ? zstdCompress(content, level) : content;
      const compressed = frame.length < content.length;
      return {
        data: compressed ? frame : content,
        compressed,
        blake3: blake3(content),
        size: Number(st.size),
        mtimeNs: String(st.mtimeNs),
        forked: false,
        error: "",
      };
    } catch (err) {
      const code = (err as { code?: string }).code;
      const known = code === "ENOENT" || code === "EACCES" ? code : "EIO";
      return {
        data: new Uint8Array(0),
        compressed: false,
        blake3: "",
        size: 0,
        mtimeNs: "0",
        forked: false,
        error: `${known}: ${(err as Error).message}`,
      };
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  });
}
