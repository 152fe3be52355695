/**
 * Portable twin of the native zstd calls, through the runtime's `node:zlib` (same format;
 * slower per call, because each call builds a new context).
 *
 * @module
 */
import zlib from "node:zlib";

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
