/**
 * The native core functions the network needs (patch, signature), loaded lazily through the
 * facade `src/native/mod.ts`, so the server starts even where only pack-add is used.
 *
 * @module
 */
import type { NativeCore } from "../native/types.ts";

/** The subset of the native core the network uses. */
export type NetworkNative = Pick<
  NativeCore,
  | "patch"
  | "signature"
  | "delta"
  | "blake3File"
  | "blake3"
  | "syncFs"
  | "zstdDecompress"
  | "trimMemory"
>;

let loaded: Promise<NetworkNative> | undefined;

/** Loads the native facade once. */
export function loadNative(): Promise<NetworkNative> {
  loaded ??= (async () => {
    // A literal specifier, so the single executable's bundle includes the facade.
    const m = (await import("../native/mod.ts")) as Record<string, unknown>;
    const pick = (name: keyof NetworkNative) => {
      const obj = [m, m.native, m.default].find((o) =>
        typeof o === "object" && o !== null &&
        typeof (o as Record<string, unknown>)[name] === "function"
      ) as Record<string, unknown> | undefined;
      if (!obj) throw new Error(`src/native/mod.ts has no ${name}()`);
      return (obj[name] as (...a: unknown[]) => unknown).bind(obj);
    };
    return {
      patch: pick("patch"),
      signature: pick("signature"),
      delta: pick("delta"),
      blake3File: pick("blake3File"),
      blake3: pick("blake3"),
      syncFs: pick("syncFs"),
      zstdDecompress: pick("zstdDecompress"),
      trimMemory: pick("trimMemory"),
    } as NetworkNative;
  })();
  return loaded;
}
