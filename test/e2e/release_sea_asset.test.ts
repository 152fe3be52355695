/**
 * src/native/sea_asset.ts: where the single executable extracts its embedded addon, and
 * how (a fake `node:sea` stands in for the executable).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  cacheRoots,
  extractSeaNative,
  materialize,
  NATIVE_ASSET,
  NATIVE_HASH_ASSET,
  type SeaApi,
} from "../../src/native/sea_asset.ts";
import { removeTemps, tempDir } from "./release_build.ts";

after(removeTemps);

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** A fake `node:sea` holding `addon` (or nothing). */
function fakeSea(addon?: Uint8Array, hash = addon && sha(addon)): SeaApi {
  const assets = new Map<string, Uint8Array>();
  if (addon !== undefined) {
    assets.set(NATIVE_ASSET, addon);
    assets.set(NATIVE_HASH_ASSET, new TextEncoder().encode(`${hash}\n`));
  }
  const get = (key: string) => {
    const a = assets.get(key);
    if (a === undefined) throw new Error(`no asset ${key}`);
    return a;
  };
  return {
    isSea: () => true,
    getRawAsset: (key) => get(key).slice().buffer as ArrayBuffer,
    getAsset: (key) => new TextDecoder().decode(get(key)),
  };
}

test("cacheRoots() puts CNCOP_CACHE_DIR, XDG and the user cache before the temporary directory", () => {
  const uid = typeof process.getuid === "function" ? `-${process.getuid()}` : "";
  const last = join(tmpdir(), `cncop${uid}`);
  assert.deepEqual(
    cacheRoots({ CNCOP_CACHE_DIR: "/c", XDG_CACHE_HOME: "/x", HOME: "/h" }, "linux"),
    ["/c", "/x/cncop", "/h/.cache/cncop", last],
  );
  assert.deepEqual(cacheRoots({ HOME: "/Users/a" }, "darwin"), [
    "/Users/a/Library/Caches/cncop",
    last,
  ]);
  assert.deepEqual(cacheRoots({ LOCALAPPDATA: "C:\\L", HOME: "/h" }, "win32"), [
    join("C:\\L", "cncop", "cache"),
    last,
  ]);
  // HOME empty (a service account, the smoke test): straight to the temporary directory.
  assert.deepEqual(cacheRoots({ HOME: "", XDG_CACHE_HOME: "" }, "linux"), [last]);
});

test("extractSeaNative() is a no-op outside a single executable", () => {
  const r = extractSeaNative("1.0.0", undefined, {});
  assert.deepEqual(r, { sea: false, reason: "not a single executable" });
});

test("extractSeaNative() says when the executable embeds no addon", () => {
  const r = extractSeaNative("1.0.0", fakeSea(), { CNCOP_CACHE_DIR: tempDir() });
  assert.equal(r.sea, true);
  assert.equal(r.path, undefined);
  assert.match(r.reason, /built without the native core/);
});

test("extractSeaNative() extracts once per version and addon, never colliding", () => {
  const cache = tempDir();
  const env = { CNCOP_CACHE_DIR: cache };
  const addon = new TextEncoder().encode("addon v1 ".repeat(1000));
  const a = extractSeaNative("1.0.0", fakeSea(addon), env);
  assert.equal(a.path, join(cache, `cncop-1.0.0-${sha(addon).slice(0, 8)}`, NATIVE_ASSET));
  assert.deepEqual(readFileSync(a.path!), Buffer.from(addon));
  const mtime = statSync(a.path!).mtimeMs;
  const again = extractSeaNative("1.0.0", fakeSea(addon), env);
  assert.equal(again.path, a.path);
  assert.equal(statSync(a.path!).mtimeMs, mtime, "an intact file is not rewritten");
  const other = new TextEncoder().encode("addon v2 ".repeat(1000));
  const b = extractSeaNative("1.1.0", fakeSea(other), env);
  assert.notEqual(b.path, a.path);
  assert.deepEqual(readFileSync(a.path!), Buffer.from(addon), "the older version is untouched");
  assert.deepEqual(readFileSync(b.path!), Buffer.from(other));
});

test("materialize() replaces a damaged file of the right size", () => {
  const dir = join(tempDir(), "v");
  const bytes = new TextEncoder().encode("0123456789".repeat(100));
  mkdirSync(dir);
  writeFileSync(join(dir, "x.node"), Buffer.alloc(bytes.byteLength, 1));
  const p = materialize(dir, "x.node", bytes, sha(bytes));
  assert.deepEqual(readFileSync(p), Buffer.from(bytes));
  assert.deepEqual(readdirSync(dir), ["x.node"], "no temporary file left");
});

test("materialize() refuses bytes that do not match the hash and leaves nothing behind", () => {
  const dir = join(tempDir(), "v");
  const bytes = new TextEncoder().encode("payload");
  assert.throws(() => materialize(dir, "x.node", bytes, "0".repeat(64)), /hash mismatch/);
  assert.deepEqual(readdirSync(dir), []);
});

test("extractSeaNative() skips cache roots it cannot use and names each one", () => {
  const base = tempDir();
  const file = join(base, "file");
  writeFileSync(file, "");
  const addon = new TextEncoder().encode("addon");
  const env = { CNCOP_CACHE_DIR: join(file, "c"), XDG_CACHE_HOME: join(base, "xdg"), HOME: "" };
  const r = extractSeaNative("1.0.0", fakeSea(addon), env);
  assert.ok(r.path?.startsWith(join(base, "xdg", "cncop")), r.reason);
  const savedTmp = process.env.TMPDIR;
  process.env.TMPDIR = join(base, "tmp"); // os.tmpdir(), the last root
  let bad;
  try {
    bad = extractSeaNative("1.0.0", fakeSea(addon, "f".repeat(64)), env);
  } finally {
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
  }
  assert.equal(bad.path, undefined);
  assert.match(bad.reason, /c: ENOTDIR/);
  assert.match(bad.reason, /hash mismatch/);
});

test(
  "extractSeaNative() refuses a cache directory owned by another user",
  { skip: process.getuid?.() !== 0 && "needs root to chown" },
  () => {
    const base = tempDir();
    const theirs = join(base, "theirs");
    mkdirSync(theirs);
    chownSync(theirs, 4321, 4321);
    const mine = join(base, "mine");
    const addon = new TextEncoder().encode("addon");
    const r = extractSeaNative("1.0.0", fakeSea(addon), {
      CNCOP_CACHE_DIR: theirs,
      XDG_CACHE_HOME: mine,
    });
    assert.ok(r.path?.startsWith(mine), r.reason);
    assert.equal(existsSync(join(theirs, `cncop-1.0.0-${sha(addon).slice(0, 8)}`)), false);
  },
);

test("a symlinked user cache directory is followed", {
  skip: process.platform === "win32" && "symlinks need privileges",
}, () => {
  const base = tempDir();
  mkdirSync(join(base, "real"));
  symlinkSync(join(base, "real"), join(base, "link"));
  const addon = new TextEncoder().encode("addon");
  const r = extractSeaNative("1.0.0", fakeSea(addon), { CNCOP_CACHE_DIR: join(base, "link") });
  assert.ok(r.path?.startsWith(join(base, "link")), r.reason);
  assert.ok(existsSync(join(base, "real", `cncop-1.0.0-${sha(addon).slice(0, 8)}`, NATIVE_ASSET)));
});
