// Runs the native addon and the portable twin on the same inputs and requires identical
// output: signature and delta bytes, delta stats, hashes, walk listings.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import type { NativeCore, WalkEntry, WalkOptions } from "../../src/native/mod.ts";
import { addon, noAddon, portable, randomBytes, scratch } from "./_helpers.ts";

const native = addon as NativeCore;

function deltaCases(): [string, Buffer, Buffer, number][] {
  const base = randomBytes(300_000, 11);
  const blocks: Buffer[] = [];
  for (let i = 0; i < base.length; i += 512) blocks.push(base.subarray(i, i + 512));
  const shuffled = Buffer.concat(blocks.map((_, i) => blocks[(i * 7919) % blocks.length]!));
  const edited = Buffer.from(base);
  for (let i = 0; i < 40; i++) edited.fill(0x41 + i, 1000 + i * 7001, 1000 + i * 7001 + 50);
  const zeros = Buffer.alloc(20_000);
  const big = randomBytes(9_500_000, 12); // past the 8 MiB read window
  const bigEdited = Buffer.concat([
    big.subarray(0, 4_000_000),
    Buffer.from("inserted"),
    big.subarray(4_000_000, 9_000_000),
    randomBytes(1_300_000, 13),
  ]);
  return [
    ["both empty", Buffer.alloc(0), Buffer.alloc(0), 0],
    ["empty base", Buffer.alloc(0), randomBytes(5000, 1), 0],
    ["empty new", base, Buffer.alloc(0), 0],
    ["shorter than a block", base.subarray(0, 100), base.subarray(0, 100), 0],
    ["short base, longer new", base.subarray(0, 100), base.subarray(0, 5000), 0],
    ["identical", base, base, 0],
    ["insert at 0", base, Buffer.concat([Buffer.from("xy"), base]), 0],
    ["append", base, Buffer.concat([base, Buffer.from("tail data")]), 0],
    ["truncate", base, base.subarray(0, 150_001), 0],
    ["shuffled blocks", base, shuffled, 512],
    ["scattered edits", base, edited, 0],
    ["random", base, randomBytes(250_000, 3), 0],
    ["repeated blocks", zeros, Buffer.concat([zeros, Buffer.from("x"), zeros]), 512],
    ["block 64", base, edited, 64],
    ["block 1000 (not a power of two)", base, edited, 1000],
    ["block multiple", base.subarray(0, 4096 * 10), base.subarray(4096, 4096 * 10), 4096],
    ["literal > 1 MiB, window refills", big, bigEdited, 0],
  ];
}

test(
  "signature() and delta() give byte-identical files native vs portable",
  { skip: noAddon },
  async () => {
    const s = scratch("pd");
    try {
      for (const [what, base, next, bs] of deltaCases()) {
        const p = (f: string) => join(s.dir, f);
        writeFileSync(p("base"), base);
        writeFileSync(p("new"), next);
        await native.signature(p("base"), p("sig.n"), bs);
        await portable.signature(p("base"), p("sig.p"), bs);
        assert.deepEqual(readFileSync(p("sig.p")), readFileSync(p("sig.n")), `${what}: signature`);
        const sn = await native.delta(p("sig.n"), p("new"), p("delta.n"));
        const sp = await portable.delta(p("sig.n"), p("new"), p("delta.p"));
        assert.deepEqual(sp, sn, `${what}: stats`);
        assert.deepEqual(readFileSync(p("delta.p")), readFileSync(p("delta.n")), `${what}: delta`);
        // Each applies the other's delta.
        await native.patch(p("base"), p("delta.p"), p("out.n"), sn.newBlake3);
        await portable.patch(p("base"), p("delta.n"), p("out.p"), sn.newBlake3);
        assert.ok(readFileSync(p("out.n")).equals(next), `${what}: native patch`);
        assert.ok(readFileSync(p("out.p")).equals(next), `${what}: portable patch`);
      }
    } finally {
      s.done();
    }
  },
);

test("hashes agree native vs portable, on buffers and files", { skip: noAddon }, async () => {
  const s = scratch("ph");
  try {
    for (const n of [0, 1, 63, 64, 1023, 1024, 1025, 100_000, 9_000_001]) {
      const data = randomBytes(n, n + 1);
      const f = join(s.dir, `f${n}`);
      writeFileSync(f, data);
      assert.equal(portable.xxh3(data), native.xxh3(data), `xxh3 ${n}`);
      assert.equal(portable.blake3(data), native.blake3(data), `blake3 ${n}`);
      assert.equal(await portable.xxh3File(f), native.xxh3(data), `xxh3File ${n}`);
      assert.equal(await native.xxh3File(f), native.xxh3(data), `xxh3File ${n}`);
      assert.equal(await portable.blake3File(f), native.blake3(data), `blake3File ${n}`);
      assert.equal(await native.blake3File(f), native.blake3(data), `blake3File ${n}`);
    }
  } finally {
    s.done();
  }
});

test("writeFilePack() gives the same pack, bar the zstd frames, native vs portable", {
  skip: noAddon,
}, async () => {
  const s = scratch("pf");
  try {
    const { statSync } = await import("node:fs");
    const { createHash } = await import("node:crypto");
    const { zstdDecompressSync } = await import("node:zlib");
    const prefix = Buffer.concat([
      Buffer.from("HDR:"),
      Buffer.from("0".repeat(64)),
      Buffer.from(":"),
    ]);
    const suffix = Buffer.alloc(8);
    /** The body of a written pack (frames joined, decoded when zstd), checked for shape. */
    const bodyOf = (pack: Buffer, level: number) => {
      const end = pack.length - 32;
      assert.deepEqual(
        createHash("sha256").update(pack.subarray(0, end)).digest(),
        pack.subarray(end),
      );
      assert.deepEqual(pack.subarray(end - 8, end), suffix);
      const parts: Buffer[] = [];
      for (let at = prefix.length; at < end - 8;) {
        const len = pack.readUInt32BE(at);
        assert.ok(len > 0 && len <= 4 << 20);
        parts.push(pack.subarray(at + 4, at + 4 + len));
        at += 4 + len;
      }
      const z = Buffer.concat(parts);
      return level > 0 ? zstdDecompressSync(z) : z;
    };
    for (const [n, level] of [[1, 3], [2_500_000, 3], [9_000_001, 1], [1_100_000, 0]] as const) {
      const data = n === 1 ? Buffer.from("x") : randomBytes(n, n);
      if (n === 2_500_000) data.fill(7, 0, 2_000_000); // compressible in part
      const src = join(s.dir, `src${n}`);
      writeFileSync(src, data);
      const st = statSync(src, { bigint: true });
      const o = (core: string) => ({
        source: src,
        out: join(s.dir, `${core}${n}.pack`),
        prefix,
        hashAt: 4,
        suffix,
        level,
        size: n,
        mtimeNs: String(st.mtimeNs),
        sig: join(s.dir, `${core}${n}.sig`),
      });
      const wn = await native.writeFilePack(o("n"));
      const wp = await portable.writeFilePack(o("p"));
      const hash = native.blake3(data);
      assert.equal(wn.blake3, hash);
      assert.equal(wp.blake3, hash);
      for (const core of ["n", "p"]) {
        const pack = readFileSync(join(s.dir, `${core}${n}.pack`));
        assert.equal(pack.subarray(4, 68).toString(), hash, `${core} ${n}: hash in its place`);
        assert.deepEqual(bodyOf(pack, level), data, `${core} ${n}: body`);
      }
      assert.equal(wn.bytes, readFileSync(join(s.dir, `n${n}.pack`)).length);
      assert.deepEqual(
        readFileSync(join(s.dir, `n${n}.sig`)),
        readFileSync(join(s.dir, `p${n}.sig`)),
      );
      // Not the file that was listed: ECHANGED, and nothing left behind.
      for (const core of [native, portable]) {
        const bad = { ...o("x"), size: n + 1 };
        await assert.rejects(core.writeFilePack(bad), /ECHANGED/);
        assert.throws(() => statSync(bad.out), /ENOENT/);
        assert.throws(() => statSync(bad.sig), /ENOENT/);
      }
    }
  } finally {
    s.done();
  }
});

test(
  "inflateStart() writes the same body and hash native vs portable, and stops the same bad bodies",
  {
    skip: noAddon,
  },
  async () => {
    const s = scratch("pi");
    try {
      const { zstdCompressSync } = await import("node:zlib");
      const body = Buffer.concat([randomBytes(700_000, 5), Buffer.alloc(3_000_000, 9)]);
      const z = zstdCompressSync(body);
      const cut = (b: Buffer, n: number) => {
        const parts: Buffer[] = [];
        for (let at = 0; at < b.length; at += n) parts.push(b.subarray(at, at + n));
        return parts;
      };
      const run = async (
        core: NativeCore,
        parts: Buffer[],
        zstd: boolean,
        max: number,
        keep = true,
      ) => {
        const out = keep ? join(s.dir, `${core.implementation}.body`) : undefined;
        const w = await core.inflateStart(out, zstd, max, 23);
        try {
          for (const p of parts) await w.write(p);
          const r = await w.finish();
          return out === undefined ? r : { ...r, body: readFileSync(out) };
        } catch (err) {
          w.abort();
          return {
            error: /EPACK: (body expands beyond|body is corrupt)/.exec(String(err))?.[1] ??
              String(err),
          };
        }
      };
      // Checked only, no file: the same hash.
      const checked = await run(native, cut(z, 1000), true, body.length, false);
      assert.deepEqual(checked, await run(portable, cut(z, 1000), true, body.length, false));
      assert.deepEqual(checked, { blake3: native.blake3(body), size: body.length });
      for (
        const [what, parts, zstd, max] of [
          ["zstd in 1000-byte frames", cut(z, 1000), true, body.length],
          ["zstd in one frame", [z], true, body.length],
          ["raw", cut(body, 300_000), false, body.length],
          ["a bomb", [z], true, 1000],
          ["a raw body too long", [body], false, 1000],
          ["garbage", [Buffer.from("not zstd at all")], true, body.length],
        ] as const
      ) {
        const n = await run(native, [...parts], zstd, max);
        const p = await run(portable, [...parts], zstd, max);
        assert.deepEqual(n, p, what);
        if ("body" in n) {
          assert.deepEqual(n.body, body, what);
          assert.equal(n.blake3, native.blake3(body), what);
        }
      }
    } finally {
      s.done();
    }
  },
);

/** A tree with the awkward cases: unicode, long names, hidden and ignore files, links. */
export function makeTree(root: string): void {
  const w = (p: string, data = p) => writeFileSync(join(root, p), data);
  const d = (p: string) => mkdirSync(join(root, p), { recursive: true });
  d("a/b/c");
  d("a.b");
  d("a-b");
  d("empty");
  d("dir with space");
  d("日本語");
  w("a/b/c/deep.txt");
  w("a/b/x.txt");
  w("a/readme.md");
  w("a.b/y.log");
  w("a-b/z.txt");
  w(".hidden");
  w(".gitignore", "*\n");
  w("dir with space/file one.txt");
  w("日本語/ファイル.txt");
  w("é.md");
  w("\uff61.txt"); // sorts before the emoji in UTF-8, after it in UTF-16
  w("😀.txt");
  w("x".repeat(255));
  w("b.md");
  symlinkSync("..", join(root, "a/b/loop"));
  symlinkSync("self", join(root, "self"));
  symlinkSync("nowhere", join(root, "dangling"));
  symlinkSync("a/readme.md", join(root, "link-to-file"));
  symlinkSync("a/b", join(root, "link-to-dir"));
  if (spawnSync("mkfifo", [join(root, "fifo")]).status !== 0) w("fifo");
}

async function listing(core: NativeCore, root: string, o: WalkOptions): Promise<WalkEntry[]> {
  const all: WalkEntry[] = [];
  for await (const b of core.walk(root, o)) {
    assert.ok(b.length > 0 && b.length <= (o.batchSize ?? 4096));
    all.push(...b);
  }
  return all;
}

test("walk() gives equal listings native vs portable", { skip: noAddon }, async () => {
  const s = scratch("pw");
  try {
    makeTree(s.dir);
    const options: WalkOptions[] = [
      {},
      { followLinks: false },
      { skipLinks: true },
      { oneFileSystem: true, batchSize: 3 },
      { include: ["**/*.txt"], reportExcluded: true },
      { include: ["**/*.txt"] },
      { include: ["a"], exclude: ["a/b/c"] },
      { include: ["a/**"], reportExcluded: true },
      { include: ["a/*/x.txt", "?.md", "[ab].*", "[!a]*.md"], reportExcluded: true },
      { include: ["{a,a-b}/*.txt", "**/.hidden"], reportExcluded: true },
      { include: ["dir with space/*"], exclude: ["**/loop"], reportExcluded: true },
      { exclude: ["*.txt", ".*"] },
      { exclude: ["**/b"] },
    ];
    for (const o of options) {
      const n = await listing(native, s.dir, o);
      const p = await listing(portable, s.dir, o);
      assert.deepEqual(p, n, JSON.stringify(o));
      assert.ok(n.length > 0, JSON.stringify(o));
    }
  } finally {
    s.done();
  }
});
