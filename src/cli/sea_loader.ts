/**
 * The main script of the single executable: runs the program's bundle, embedded as the SEA
 * asset `cncop.cjs`, through a V8 code cache kept beside the extracted native addon, one
 * per program (`<cache>/code-<bundle sha256>-<node version>-<arch>-<program>.bin`, see
 * `privateCacheDir` and {@link programKey}).
 *
 * A code cache made at build time would halve every start (V8 then neither parses nor
 * compiles the bundle), but its bytes differ from build to build, and release builds are
 * reproducible. So the first run on a machine compiles as before and, when it exits, saves
 * what V8 compiled (the functions that ran included); the next runs start from it. A cache
 * V8 refuses (another V8, other flags) or whose SHA-256 does not match (damaged) is made
 * again; one that cannot be written is only a slower start.
 *
 * @module
 */
import { createHash } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { constants, Script } from "node:vm";
import { privateCacheDir, type SeaApi } from "../native/sea_asset.ts";

/** The SEA asset keys of the bundle and its SHA-256 (hex), written by scripts/build_sea.mjs. */
export const BUNDLE_ASSET = "cncop.cjs";
export const BUNDLE_HASH_ASSET = "cncop.cjs.sha256";

/**
 * The program a start runs, as the dispatcher will see it: the name the executable was
 * started under (`Bin/backupagentnq`), else the first argument (`cncop backupagentnq`).
 * Each program has its own cache: V8 caches the functions the first run compiled, and
 * programs run different code.
 */
export function programKey(argv0: string, args: readonly string[]): string {
  // Either separator: a Windows path is a Windows path wherever this runs.
  let name = (argv0.split(/[\\/]/).pop() ?? "").replace(/\.exe$/i, "").toLowerCase();
  if (name === "cncop" && args[0] !== undefined && /^[a-z][a-z0-9]*$/.test(args[0])) {
    name = args[0];
  }
  return name.replace(/[^a-z0-9]/g, "_").slice(0, 32) || "cncop";
}

/**
 * Where the code cache of `program` for the bundle with SHA-256 `sha256` lives; undefined
 * when nowhere (no private cache directory, or `CNCOP_CODE_CACHE=0`).
 */
export function codeCachePath(
  sha256: string,
  program: string,
  env: Record<string, string | undefined> = process.env,
): string | undefined {
  if (env.CNCOP_CODE_CACHE === "0") return undefined;
  const dir = privateCacheDir(env);
  if (dir === undefined) return undefined;
  const key = `${sha256.slice(0, 16)}-${process.version}-${process.arch}-${program}`;
  return join(dir, `code-${key}.bin`);
}

/**
 * A cache file: the SHA-256 of V8's bytes, then the bytes. A release V8 checks its cache's
 * header (version, source, flags) but not its body, so a torn or damaged body is caught
 * here, before V8 runs it.
 */
export function seal(data: Uint8Array): Buffer {
  return Buffer.concat([createHash("sha256").update(data).digest(), data]);
}

/** The V8 bytes of a cache file, or undefined when they do not match their SHA-256. */
export function unseal(file: Buffer): Buffer | undefined {
  if (file.length <= 32) return undefined;
  const data = file.subarray(32);
  return createHash("sha256").update(data).digest().equals(file.subarray(0, 32)) ? data : undefined;
}

/** Code caches older than this are removed when a new one is written. */
export const STALE_CACHE_MS = 30 * 86400_000;

/**
 * Removes code caches in `dir` made more than {@link STALE_CACHE_MS} ago (a cache is
 * written once, so its age is its file's): other versions' caches do not pile up, and one
 * still in use is only made again. Never throws.
 */
export function removeStaleCaches(dir: string, now = Date.now()): number {
  let n = 0;
  try {
    for (const name of readdirSync(dir)) {
      if (!/^code-.*\.bin$/.test(name)) continue;
      const p = join(dir, name);
      try {
        if (now - statSync(p).mtimeMs > STALE_CACHE_MS) {
          rmSync(p, { force: true });
          n++;
        }
      } catch {
        // gone meanwhile, or not ours to remove
      }
    }
  } catch {
    // no listing: nothing removed
  }
  return n;
}

/** The globals of a CommonJS main script, which the bundle expects. */
export interface MainScope {
  require: (id: string) => unknown;
  module: unknown;
  exports: unknown;
  __filename: string;
  __dirname: string;
}

/**
 * Compiles the bundle `source` (with the cache at `cachePath` when it has one V8 accepts)
 * and runs it with the main script's globals `scope`. When there was no usable cache, one
 * is saved at exit (written to a temporary name, then renamed into place). Returns whether
 * the cache was used ("hit"), is to be made ("miss"), or there is none ("off").
 */
export function runBundle(
  source: string,
  scope: MainScope,
  cachePath?: string,
): "hit" | "miss" | "off" {
  let cachedData: Buffer | undefined;
  if (cachePath !== undefined) {
    try {
      cachedData = unseal(readFileSync(cachePath));
    } catch {
      // none yet
    }
  }
  const script = new Script(
    `(function (require, module, exports, __filename, __dirname) {${source}\n})`,
    {
      filename: BUNDLE_ASSET,
      cachedData,
      importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
    },
  );
  const miss = cachePath !== undefined &&
    (cachedData === undefined || script.cachedDataRejected === true);
  if (miss) {
    process.once("exit", () => {
      const tmp = `${cachePath}.${process.pid}.tmp`;
      try {
        const fd = openSync(tmp, "w", 0o600);
        try {
          writeFileSync(fd, seal(script.createCachedData()));
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        renameSync(tmp, cachePath!);
        removeStaleCaches(dirname(cachePath!));
      } catch {
        // Only a slower next start: never an exception at exit (it would change the code).
        try {
          rmSync(tmp, { force: true });
        } catch {
          // left for the next first run to replace
        }
      }
    });
  }
  const main = script.runInThisContext() as (...args: unknown[]) => void;
  main(scope.require, scope.module, scope.exports, scope.__filename, scope.__dirname);
  return cachePath === undefined ? "off" : miss ? "miss" : "hit";
}

/**
 * Runs the embedded bundle; the SEA's main script calls this with its own globals. A
 * failure to start is one line on stderr and exit status 70, as the bundle's own.
 */
export function startSea(scope: MainScope): void {
  let source: string;
  let sea: SeaApi;
  try {
    const getBuiltin = (process as { getBuiltinModule?: (id: string) => unknown })
      .getBuiltinModule;
    sea = getBuiltin?.("node:sea") as SeaApi;
    source = sea.getAsset(BUNDLE_ASSET, "utf8");
  } catch (err) {
    process.stderr.write(`cncop: cannot start: the program is missing (${String(err)})\n`);
    process.exitCode = 70;
    return;
  }
  let cachePath: string | undefined;
  try {
    const argv0 = process.env.CNCOP_ARGV0 || process.argv0 || process.execPath;
    const program = programKey(argv0, process.argv.slice(2));
    cachePath = codeCachePath(sea.getAsset(BUNDLE_HASH_ASSET, "utf8").trim(), program);
  } catch {
    cachePath = undefined; // no cache: a slower start, nothing else
  }
  runBundle(source, scope, cachePath);
}
