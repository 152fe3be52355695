// Shared by the native tests: both cores, scratch dirs, seeded random bytes.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadAddonCore, loadPortableCore, nativeStatus } from "../../src/native/mod.ts";
import type { NativeCore } from "../../src/native/mod.ts";

export const portable: NativeCore = await loadPortableCore();
export const addon: NativeCore | null = loadAddonCore();
/** The cores to run: the addon (when built) and the portable twin. */
export const cores: NativeCore[] = addon ? [addon, portable] : [portable];
/** Skip reason for tests that need the addon. */
export const noAddon: string | false = addon
  ? false
  : `native addon not loaded: ${nativeStatus().reason}`;

/** A fresh scratch directory, removed by the returned cleanup. */
export function scratch(tag: string): { dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `cncop-native-${tag}-`));
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Deterministic pseudo-random bytes (xorshift32). */
export function randomBytes(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}
