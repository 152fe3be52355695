/**
 * Portable twin of the native body inflater (native/src/inflate.rs): a large pack body's
 * frames, decompressed through the runtime's zstd, hashed and written to a body file.
 *
 * @module
 */
import { closeSync, openSync, writeSync } from "node:fs";
import zlib from "node:zlib";
import type { BodyWriter } from "../types.ts";
import { newBlake3 } from "./hash.ts";

/** Starts a body of at most `maxSize` bytes; see {@link NativeCore.inflateStart}. */
export async function inflateStart(
  path: string | undefined,
  zstd: boolean,
  maxSize: number,
  windowLogMax: number,
): Promise<BodyWriter> {
  const hasher = await newBlake3();
  let fd = path === undefined ? undefined : openSync(path, "w", 0o600);
  let produced = 0;
  let failure: Error | undefined;
  const put = (data: Uint8Array) => {
    if (failure) return;
    produced += data.length;
    if (produced > maxSize) {
      failure = new Error(`EPACK: body expands beyond its declared ${maxSize} bytes`);
      return;
    }
    hasher.update(data);
    if (fd === undefined) return;
    for (let at = 0; at < data.length;) at += writeSync(fd, data, at, data.length - at);
  };
  const z = zstd
    ? zlib.createZstdDecompress({
      params: { [zlib.constants.ZSTD_d_windowLogMax]: windowLogMax },
      chunkSize: 256 * 1024,
    })
    : undefined;
  z?.on("data", put);
  z?.on("error", (e: Error) => (failure ??= new Error(`EPACK: body is corrupt: ${e.message}`)));
  const close = () => {
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
  };
  return {
    async write(frame) {
      if (failure) throw failure;
      if (z) {
        // The write's callback may never come once the stream failed: its error ends it too.
        await new Promise<void>((res) => {
          const done = () => {
            z.off("error", done);
            res();
          };
          z.once("error", done);
          z.write(frame, done);
        });
      } else put(frame);
      if (failure) throw failure;
    },
    async finish() {
      if (z) {
        await new Promise<void>((res) => {
          z.once("end", res);
          z.once("error", () => res());
          z.end();
        });
      }
      close();
      if (failure) throw failure;
      return { blake3: hasher.digest("hex"), size: produced };
    },
    abort() {
      z?.destroy();
      close();
    },
  };
}
