/**
 * Portable twin of the native zstd calls, through the runtime's `node:zlib` (same format;
 * slower per call, because each call builds a new context).
 *
 * @module
 */
import zlib from "node:zlib";
import type { FrameCheck } from "../types.ts";
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
