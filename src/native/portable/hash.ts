/**
 * Portable twins of the hashing functions: xxh3-128 and BLAKE3 through hash-wasm
 * (WebAssembly, SIMD where the runtime has it). Call {@link initHashes} once before the
 * synchronous functions; the facade does.
 *
 * @module
 */

import { openSource } from "./source_open.ts";
import { createBLAKE3, createXXHash128 } from "hash-wasm";
import type { IHasher } from "hash-wasm";

let xxh: IHasher | undefined;
let b3: IHasher | undefined;

/** Compiles the WebAssembly hashers (idempotent). */
export async function initHashes(): Promise<void> {
  xxh ??= await createXXHash128();
  b3 ??= await createBLAKE3();
}

function ready(h: IHasher | undefined): IHasher {
  if (h === undefined) throw new Error("portable hashes used before initHashes()");
  return h;
}

/** xxh3-128 of a buffer, 32 lowercase hex digits. */
export function xxh3(data: Uint8Array): string {
  return ready(xxh).init().update(data).digest("hex");
}

/** xxh3-128 of a buffer as 16 bytes, canonical (big-endian) order: the block strong hash. */
export function xxh3Bytes(data: Uint8Array): Uint8Array {
  return ready(xxh).init().update(data).digest("binary");
}

/** BLAKE3-256 of a buffer, 64 lowercase hex digits. */
export function blake3(data: Uint8Array): string {
  return ready(b3).init().update(data).digest("hex");
}

/** A fresh streaming BLAKE3 hasher (separate instance, so streams can interleave). */
export async function newBlake3(): Promise<IHasher> {
  return (await createBLAKE3()).init();
}

const READ_SIZE = 8 << 20;

/** Calls `onChunk` with successive chunks of the file (the buffer is reused). */
export async function readChunks(
  path: string,
  onChunk: (chunk: Uint8Array) => void,
): Promise<void> {
  const fh = await openSource(path);
  try {
    const buf = new Uint8Array(READ_SIZE);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) return;
      onChunk(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
}

async function hashFile(path: string, h: IHasher): Promise<string> {
  h.init();
  await readChunks(path, (c) => h.update(c));
  return h.digest("hex");
}

/** xxh3-128 of a file's content. */
export async function xxh3File(path: string): Promise<string> {
  return hashFile(path, await createXXHash128());
}

/** BLAKE3-256 of a file's content. */
export async function blake3File(path: string): Promise<string> {
  return hashFile(path, await createBLAKE3());
}
