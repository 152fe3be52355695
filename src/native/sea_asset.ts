/**
 * The native addon embedded in the single executable: extracts the SEA asset
 * `cncop_native.node` once into a per-version cache directory and returns its path, so
 * `process.dlopen` can load it (a shared library must be a file to be loaded).
 *
 * The cache directory is named after the cncop version and the first 8 hex digits of the
 * addon's SHA-256 (`cncop-0.1.0-1a2b3c4d/`), so two versions side by side never collide.
 * It is the first of these that can be written: `CNCOP_CACHE_DIR`, `$XDG_CACHE_HOME/cncop`,
 * the per-user cache (`~/.cache/cncop`, `~/Library/Caches/cncop`, `%LOCALAPPDATA%\cncop`)
 * and `<tmpdir>/cncop-<uid>`; each is made with mode 0700 and refused unless the current user
 * owns it (and, in the shared temporary directory, unless it is a real directory). `Bin/` is
 * never written, so a read-only `Bin/` works. A file already there is used when its SHA-256
 * matches; a new one is verified the same way before it is renamed into place.
 *
 * Under a runtime (not a SEA), or under Deno (no `node:sea`), every function here is a no-op.
 *
 * @module
 */
import { createHash } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cncopVersion } from "../core/version.ts";

/** The SEA asset key of the native addon. */
export const NATIVE_ASSET = "cncop_native.node";

/** The SEA asset key of the addon's SHA-256 (hex), written by scripts/build_sea.mjs. */
export const NATIVE_HASH_ASSET = "cncop_native.node.sha256";

/** The part of `node:sea` this module uses. */
export interface SeaApi {
  isSea(): boolean;
  getRawAsset(key: string): ArrayBuffer;
  getAsset(key: string, encoding: string): string;
  getAssetKeys?: () => string[];
}

/** What {@link extractSeaNative} found. */
export interface SeaNativeResult {
  /** True when running as a single executable. */
  sea: boolean;
  /** The extracted addon, ready for `process.dlopen`. */
  path?: string;
  /** Why there is no path: not a SEA, no embedded addon, or no writable cache. */
  reason: string;
}

/** The `node:sea` module, when running as a single executable; never throws. */
export function seaApi(): SeaApi | undefined {
  try {
    const getBuiltin = (process as { getBuiltinModule?: (id: string) => unknown })
      .getBuiltinModule;
    const sea = getBuiltin?.("node:sea") as SeaApi | undefined;
    return sea !== undefined && sea.isSea() ? sea : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Candidate cache roots, best first (see the module comment).
 *
 * @example
 * ```ts
 * cacheRoots({ XDG_CACHE_HOME: "/var/cache/me" }, "linux"); // ["/var/cache/me/cncop", ...]
 * ```
 */
export function cacheRoots(
  env: Record<string, string | undefined> = process.env,
  platform: string = process.platform,
): string[] {
  const roots: string[] = [];
  const nonEmpty = (v: string | undefined): v is string => v !== undefined && v !== "";
  if (nonEmpty(env.CNCOP_CACHE_DIR)) roots.push(env.CNCOP_CACHE_DIR);
  if (platform === "win32") {
    if (nonEmpty(env.LOCALAPPDATA)) roots.push(join(env.LOCALAPPDATA, "cncop", "cache"));
  } else {
    if (nonEmpty(env.XDG_CACHE_HOME)) roots.push(join(env.XDG_CACHE_HOME, "cncop"));
    if (nonEmpty(env.HOME)) {
      roots.push(
        platform === "darwin"
          ? join(env.HOME, "Library", "Caches", "cncop")
          : join(env.HOME, ".cache", "cncop"),
      );
    }
  }
  const uid = typeof process.getuid === "function" ? `-${process.getuid()}` : "";
  roots.push(join(tmpdir(), `cncop${uid}`));
  return roots;
}

/**
 * The first cache root (see {@link cacheRoots}) that is, or can be made, a private
 * directory of the current user; undefined when none can.
 */
export function privateCacheDir(
  env: Record<string, string | undefined> = process.env,
): string | undefined {
  const roots = cacheRoots(env);
  for (const [i, root] of roots.entries()) {
    try {
      ensurePrivateDir(root, i === roots.length - 1);
      return root;
    } catch {
      // the next one
    }
  }
  return undefined;
}

function message(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  return typeof code === "string" ? code : e instanceof Error ? e.message : String(e);
}

/**
 * Creates `root` (0700) and checks it is a directory the current user owns; `shared` (the
 * temporary directory's root, where other users can create names) also refuses a symlink.
 */
function ensurePrivateDir(root: string, shared: boolean): void {
  mkdirSync(root, { recursive: true, mode: 0o700 });
  if (shared && lstatSync(root).isSymbolicLink()) throw new Error("a symlink");
  const st = statSync(root);
  if (!st.isDirectory()) throw new Error("not a directory");
  if (typeof process.getuid === "function" && st.uid !== process.getuid()) {
    throw new Error("owned by another user");
  }
  // What is here runs as code (the addon, the code caches): no one else may write here.
  if (process.platform !== "win32" && (st.mode & 0o022) !== 0) {
    throw new Error("writable by others");
  }
}

function fileSha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/**
 * Writes `bytes` to `dir/name` unless a file with that SHA-256 is already there; the new
 * file is written to a temporary name, checked against `sha256`, then renamed into place,
 * so a concurrent start or a crash never leaves a torn addon under the final name.
 *
 * @throws {Error} when the directory cannot be written or the written bytes do not match.
 */
export function materialize(dir: string, name: string, bytes: Uint8Array, sha256: string): string {
  const target = join(dir, name);
  try {
    if (statSync(target).size === bytes.byteLength && fileSha256(target) === sha256) {
      return target;
    }
  } catch {
    // not there yet
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${name}.${process.pid}.${Date.now()}.tmp`);
  try {
    const fd = openSync(tmp, "wx", 0o700);
    try {
      let off = 0;
      while (off < bytes.byteLength) off += writeSync(fd, bytes, off, bytes.byteLength - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    const got = fileSha256(tmp);
    if (got !== sha256) throw new Error(`hash mismatch (got ${got.slice(0, 8)})`);
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    // A concurrent start may have won the race (on Windows, renaming over a loaded file
    // fails): its file is as good as ours.
    try {
      if (fileSha256(target) === sha256) return target;
    } catch {
      // still not there
    }
    throw e;
  }
  return target;
}

/**
 * Extracts the embedded addon for `version` and returns its path, or why there is none.
 * Never throws.
 *
 * @example
 * ```ts
 * const r = extractSeaNative();
 * if (r.path !== undefined) process.dlopen(module, r.path);
 * ```
 */
export function extractSeaNative(
  version: string = cncopVersion,
  sea: SeaApi | undefined = seaApi(),
  env: Record<string, string | undefined> = process.env,
): SeaNativeResult {
  if (sea === undefined) return { sea: false, reason: "not a single executable" };
  let sha256: string;
  let bytes: Uint8Array;
  try {
    sha256 = sea.getAsset(NATIVE_HASH_ASSET, "utf8").trim();
    bytes = new Uint8Array(sea.getRawAsset(NATIVE_ASSET));
  } catch {
    return { sea: true, reason: "this executable was built without the native core" };
  }
  const sub = `cncop-${version}-${sha256.slice(0, 8)}`;
  const tried: string[] = [];
  const roots = cacheRoots(env);
  for (const [i, root] of roots.entries()) {
    try {
      ensurePrivateDir(root, i === roots.length - 1);
      const path = materialize(join(root, sub), NATIVE_ASSET, bytes, sha256);
      return { sea: true, path, reason: "" };
    } catch (e) {
      tried.push(`${root}: ${message(e)}`);
    }
  }
  return { sea: true, reason: `cannot extract the embedded addon (${tried.join("; ")})` };
}
