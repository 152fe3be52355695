/**
 * Streaming BLAKE3 for packs, through `hash-wasm` (portable, same output as the native
 * core's `blake3File`). Incremental, so the pack writer and reader hash while streaming.
 *
 * @module
 */
import { createReadStream } from "node:fs";
import { createBLAKE3 } from "hash-wasm";

/** An incremental BLAKE3-256 hasher. */
export interface Blake3Hasher {
  update(data: Uint8Array): void;
  /** Lowercase hex digest (64 digits). */
  digest(): string;
}

/** A new incremental BLAKE3-256 hasher. */
export async function newBlake3(): Promise<Blake3Hasher> {
  const h = await createBLAKE3(256);
  h.init();
  return {
    update: (data) => {
      h.update(data);
    },
    digest: () => h.digest("hex"),
  };
}

/** BLAKE3-256 hex of a file's content, streamed. */
export async function blake3FileHex(path: string): Promise<{ hash: string; size: number }> {
  const h = await newBlake3();
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    const buf = chunk as Buffer;
    size += buf.length;
    h.update(buf);
  }
  return { hash: h.digest(), size };
}
