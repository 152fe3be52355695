/**
 * The native core facade: the one module the rest of cncop imports for walk, hashing,
 * rsync-style deltas, file locks and forks. Backed by the Rust addon when it loads
 * (`native/`, `npm run build:native`), else by the portable TypeScript twins in
 * `portable/`; both give identical results (test/native/parity.test.ts).
 *
 * @example
 * ```ts
 * import { native, nativeStatus } from "../native/mod.ts";
 * for await (const batch of native.walk("/srv/data", { exclude: ["**\/*.tmp"] })) {
 *   for (const e of batch) console.log(e.path, e.size);
 * }
 * console.log(nativeStatus()); // { loaded: true, path: ".../cncop_native.node" }
 * ```
 *
 * @module
 */

import { CncopError } from "../core/errors.ts";
import type { NativeBinding, NativeStatus } from "./load.ts";
import { loadBinding } from "./load.ts";
import type { EntryKind, FileLock, NativeCore, WalkEntry, WalkOptions } from "./types.ts";

export type * from "./types.ts";
export type { NativeStatus } from "./load.ts";
export { setNativePath } from "./load.ts";
export { comparePaths } from "./walk_order.ts";

/** A VSS shadow copy (Windows). */
export interface ShadowCopy {
  id: string;
  /** `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopyN`: the snapshot's root. */
  devicePath: string;
}

function wrapError(e: unknown): CncopError {
  if (e instanceof CncopError) return e;
  return new CncopError(e instanceof Error ? e.message : String(e), { cause: e });
}

async function wrapAsync<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    throw wrapError(e);
  }
}

function wrapSync<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw wrapError(e);
  }
}

const KINDS: readonly EntryKind[] = ["file", "dir", "symlink", "other", "error"];

async function* nativeWalk(
  b: NativeBinding,
  root: string,
  o: WalkOptions,
): AsyncGenerator<WalkEntry[]> {
  const h = wrapSync(() =>
    b.walkStart(root, {
      followLinks: o.followLinks ?? true,
      skipLinks: o.skipLinks ?? false,
      oneFileSystem: o.oneFileSystem ?? false,
      include: o.include ?? [],
      exclude: o.exclude ?? [],
      reportExcluded: o.reportExcluded ?? false,
      batchSize: o.batchSize && o.batchSize > 0 ? o.batchSize : 4096,
    })
  );
  try {
    for (;;) {
      const batch = await h.next();
      if (batch === null) return;
      const n = batch.count;
      const paths = batch.paths.split("\0");
      const texts = batch.texts.split("\0");
      const dv = new DataView(batch.meta.buffer, batch.meta.byteOffset, batch.meta.byteLength);
      const out: WalkEntry[] = new Array(n);
      let dev = -1n;
      for (let i = 0; i < n; i++) {
        const o8 = i * 56;
        // Small fields read as 32-bit halves: a BigInt per field only to make a Number of it
        // was most of the walk's garbage (six per entry).
        const flags = dv.getUint32(o8, true);
        const kind = KINDS[flags & 0xff] ?? "error";
        // Most entries share the device: reuse the BigInt rather than make a new one.
        const d = dv.getBigUint64(o8 + 40, true);
        if (d !== dev) dev = d;
        const e: WalkEntry = {
          path: paths[i]!,
          kind,
          size: dv.getUint32(o8 + 8, true) + dv.getInt32(o8 + 12, true) * 0x1_0000_0000,
          mtimeNs: dv.getBigInt64(o8 + 16, true),
          ctimeNs: dv.getBigInt64(o8 + 24, true),
          ino: dv.getBigUint64(o8 + 32, true),
          dev,
          mode: dv.getInt32(o8 + 48, true),
        };
        if (flags & 0x200) {
          if (kind === "error") e.error = texts[i]!;
          else e.linkTarget = texts[i]!;
        }
        if (flags & 0x100) e.excluded = true;
        out[i] = e;
      }
      yield out;
    }
  } finally {
    h.close();
  }
}

/** The core backed by the addon. */
function addonCore(b: NativeBinding): NativeCore {
  return {
    implementation: "native",
    walk: (root, options = {}) => nativeWalk(b, root, options),
    xxh3: (data) => b.xxh3(data),
    xxh3File: (path) => wrapAsync(b.xxh3File(path)),
    blake3: (data) => b.blake3(data),
    blake3File: (path) => wrapAsync(b.blake3File(path)),
    syncFs: (path) => wrapAsync(b.syncFs(path)),
    trimMemory: () => b.trimMemory(),
    zstdCompress: (data, level) => wrapSync(() => b.zstdCompress(data, level)),
    zstdDecompress: (data, max, wlog) => wrapSync(() => b.zstdDecompress(data, max, wlog)),
    readFilesForPack: async (paths, level, sizes, forks) => {
      // One buffer for the batch; each file's data is a view of it.
      const { data, files } = await wrapAsync(b.readFilesForPack(paths, level, sizes, forks));
      let at = 0;
      return files.map(({ length, ...f }) => ({ ...f, data: data.subarray(at, at += length) }));
    },
    writeFilePack: (o) => wrapAsync(b.writeFilePack(o)),
    inflateStart: (path, zstd, maxSize, wlog) => {
      const h = wrapSync(() => b.inflateStart(path, zstd, maxSize, wlog));
      return Promise.resolve({
        write: (frame) => wrapAsync(h.write(frame)),
        finish: () => wrapAsync(h.finish()),
        abort: () => h.abort(),
      });
    },
    verifyFrames: (checks, wlog) =>
      wrapAsync(
        b.verifyFrames(
          checks.map((c) => c.frame),
          checks.map((c) => c.zstd),
          checks.map((c) => c.size),
          checks.map((c) => c.blake3),
          wlog,
        ),
      ),
    signature: (basePath, sigPath, blockSize = 0) =>
      wrapAsync(b.signature(basePath, sigPath, blockSize)),
    delta: (sigPath, newPath, deltaPath) => wrapAsync(b.delta(sigPath, newPath, deltaPath)),
    patch: (basePath, deltaPath, outPath, expected) =>
      wrapAsync(b.patch(basePath, deltaPath, outPath, expected)),
    lockFile: async (path, wait): Promise<FileLock | null> => {
      // Waiting polls with non-blocking attempts: a blocking flock would hold one of the
      // four libuv pool threads, which every fs call of the process shares, for as long as
      // the other holder runs.
      let delay = 10;
      for (;;) {
        const l = await wrapAsync(b.lockFile(path, false));
        if (l !== null) return { release: () => l.release() };
        if (!wait) return null;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 250);
      }
    },
    forkRead: (path, name) => wrapSync(() => b.forkRead(path, name)),
    forkWrite: (path, name, value) => wrapSync(() => b.forkWrite(path, name, value)),
    forkRemove: (path, name) => wrapSync(() => b.forkRemove(path, name)),
    forksSupported: (dir) => b.forksSupported(dir),
  };
}

/**
 * The portable TypeScript core (compiles the WebAssembly hashers on first call). The facade
 * uses it when the addon is missing; tests and benchmarks use it to compare.
 */
export async function loadPortableCore(): Promise<NativeCore> {
  // Loaded on demand: with the addon, their start-up (hash-wasm's WebAssembly, node:zlib)
  // was about a third of every program's (34 of 110 ms).
  const [pCompress, pDelta, pDurable, pFork, pHash, pInflate, pLock, pPack, pWalk] = await Promise
    .all([
      import("./portable/compress.ts"),
      import("./portable/delta.ts"),
      import("./portable/durable.ts"),
      import("./portable/fork.ts"),
      import("./portable/hash.ts"),
      import("./portable/inflate.ts"),
      import("./portable/lock.ts"),
      import("./portable/pack_file.ts"),
      import("./portable/walk.ts"),
    ]);
  await pHash.initHashes();
  return {
    implementation: "portable",
    walk: (root, options) => pWalk.walk(root, options),
    xxh3: pHash.xxh3,
    xxh3File: (path) => wrapAsync(pHash.xxh3File(path)),
    blake3: pHash.blake3,
    blake3File: (path) => wrapAsync(pHash.blake3File(path)),
    syncFs: (path) => wrapAsync(pDurable.syncFs(path)),
    trimMemory: () => false,
    zstdCompress: pCompress.zstdCompress,
    zstdDecompress: pCompress.zstdDecompress,
    verifyFrames: (checks, wlog) => Promise.resolve(pCompress.verifyFrames(checks, wlog)),
    readFilesForPack: (paths, level) => Promise.resolve(pCompress.readFilesForPack(paths, level)),
    writeFilePack: (o) => wrapAsync(pPack.writeFilePack(o)),
    inflateStart: (path, zstd, maxSize, wlog) =>
      wrapAsync(pInflate.inflateStart(path, zstd, maxSize, wlog)),
    signature: (basePath, sigPath, blockSize) =>
      wrapAsync(pDelta.signature(basePath, sigPath, blockSize)),
    delta: (sigPath, newPath, deltaPath) => wrapAsync(pDelta.delta(sigPath, newPath, deltaPath)),
    patch: (basePath, deltaPath, outPath, expected) =>
      wrapAsync(pDelta.patch(basePath, deltaPath, outPath, expected)),
    lockFile: (path, wait) => wrapAsync(pLock.lockFile(path, wait)),
    forkRead: pFork.forkRead,
    forkWrite: pFork.forkWrite,
    forkRemove: pFork.forkRemove,
    forksSupported: pFork.forksSupported,
  };
}

const loaded = loadBinding();
const addon: NativeCore | null = loaded.binding ? addonCore(loaded.binding) : null;

/** The addon-backed core, or null when the addon did not load (see {@link nativeStatus}). */
export function loadAddonCore(): NativeCore | null {
  return addon;
}

/**
 * The core in use: the addon when it loaded, else the portable twins.
 * `CNCOP_NATIVE=0` forces the portable one.
 */
export const native: NativeCore = addon ?? (await loadPortableCore());

/** {@link native}, as a function. */
export function getNativeCore(): NativeCore {
  return native;
}

/**
 * Whether the native addon loaded; if not, why (`cncop version` prints this).
 *
 * @example
 * ```ts
 * nativeStatus(); // { loaded: false, reason: "disabled by CNCOP_NATIVE=0" }
 * ```
 */
export function nativeStatus(): NativeStatus {
  return { ...loaded.status };
}

/**
 * Creates a VSS shadow copy of `volume` (e.g. `C:\\`). Windows with the native core only.
 *
 * @throws {CncopError} elsewhere, or when VSS refuses (needs an elevated process).
 */
export function vssCreate(volume: string): ShadowCopy {
  if (!loaded.binding) throw new CncopError("VSS needs the native core");
  const b = loaded.binding;
  return wrapSync(() => b.vssCreate(volume));
}

/** Releases a shadow copy made by {@link vssCreate}. */
export function vssRelease(id: string): void {
  if (!loaded.binding) throw new CncopError("VSS needs the native core");
  const b = loaded.binding;
  wrapSync(() => b.vssRelease(id));
}
