import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { statSync, utimesSync } from "node:fs";
import { mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { decodeForkState, FORK_NAME } from "../../src/ccs/file_state.ts";
import { cores } from "./_helpers.ts";

describe("zstd and syncFs, native and portable", () => {
  const text = Buffer.from("the quick brown fox jumps over the lazy dog\n".repeat(2000));
  for (const c of cores) {
    test(`${c.implementation}: round trip, bounded output, corrupt input`, () => {
      for (const data of [text, randomBytes(70_000), Buffer.alloc(0)]) {
        const z = c.zstdCompress(data, 3);
        assert.deepEqual(Buffer.from(c.zstdDecompress(z, data.length, 23)), data);
        // Every core reads every other core's frames.
        for (const o of cores) {
          assert.deepEqual(Buffer.from(o.zstdDecompress(z, data.length, 23)), data);
        }
      }
      const z = c.zstdCompress(text, 3);
      assert.ok(z.length < text.length / 20);
      assert.throws(() => c.zstdDecompress(z, text.length - 1, 23));
      assert.throws(() => c.zstdDecompress(z.subarray(0, z.length - 5), text.length, 23));
      assert.throws(() => c.zstdDecompress(randomBytes(100), 1000, 23));
    });

    test(`${c.implementation}: verifyFrames checks each frame's size and hash`, async () => {
      const bodies = [text, randomBytes(5000), Buffer.from("x")];
      const frames = bodies.map((b) => c.zstdCompress(b, 3));
      for (const [i, f] of frames.entries()) {
        assert.deepEqual(Buffer.from(c.zstdDecompress(f, bodies[i]!.length, 23)), bodies[i]);
      }
      const checks = bodies.map((b, i) => ({
        frame: frames[i]!,
        zstd: true,
        size: b.length,
        blake3: c.blake3(b),
      }));
      checks.push({
        frame: Buffer.from("raw"),
        zstd: false,
        size: 3,
        blake3: c.blake3(Buffer.from("raw")),
      });
      assert.deepEqual(await c.verifyFrames(checks, 23), ["", "", "", ""]);
      const bad = await c.verifyFrames([
        { ...checks[0]!, size: 100 },
        { ...checks[1]!, blake3: c.blake3(Buffer.from("other")) },
        { ...checks[3]!, size: 4 },
      ], 23);
      assert.match(bad[0]!, /larger than its declared 100/);
      assert.match(bad[1]!, /hash/);
      assert.match(bad[2]!, /3 bytes/);
    });

    test(`${c.implementation}: readFilesForPack reads, hashes and compresses each file`, async () => {
      const dir = await mkdtemp(join(tmpdir(), "cncop-readpack-"));
      try {
        const random = randomBytes(50_000);
        const files = { text, random, empty: Buffer.alloc(0) };
        for (const [n, b] of Object.entries(files)) await writeFile(join(dir, n), b);
        const names = [...Object.keys(files), "missing"];
        // Expected sizes spare a stat; wrong ones must not change what is read. Twice over
        // the same pool threads, whose read buffers then hold a longer file's bytes.
        for (const sizes of [undefined, [text.length, random.length, 0, 0], [7, 3, 9, 1]]) {
          const got = await c.readFilesForPack(names.map((n) => join(dir, n)), 3, sizes);
          for (const [i, [n, content]] of Object.entries(files).entries()) {
            const r = got[i]!;
            const st = statSync(join(dir, n), { bigint: true });
            assert.equal(r.error, "", n);
            assert.equal(r.blake3, c.blake3(content), n);
            assert.equal(r.size, content.length, n);
            assert.equal(r.mtimeNs, String(st.mtimeNs), n);
            const body = r.compressed ? c.zstdDecompress(r.data, content.length, 23) : r.data;
            assert.deepEqual(Buffer.from(body), content, n);
          }
          assert.equal(got[0]!.compressed, true, "text shrinks");
          assert.equal(got[1]!.compressed, false, "random bytes are kept as they are");
          assert.match(got[3]!.error, /^ENOENT/);
          assert.equal(got[3]!.blake3, "");
          assert.equal(got[3]!.data.length, 0);
          assert.equal(got.length, names.length);
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    test(`${c.implementation}: readFilesForPack keeps the state of unchanged files in their forks`, async (t) => {
      const dir = await mkdtemp(join(tmpdir(), "cncop-readpack-fork-"));
      try {
        if (c.implementation === "native" && !c.forksSupported(dir)) {
          return t.skip("no user xattrs on this filesystem");
        }
        await writeFile(join(dir, "same"), text);
        await writeFile(join(dir, "touched"), "touched");
        await writeFile(join(dir, "target"), "target");
        await symlink(join(dir, "target"), join(dir, "link"));
        const paths = ["same", "touched", "link"].map((n) => join(dir, n));
        const st = paths.map((p) => statSync(p, { bigint: true }));
        // "touched" was listed before a write the read then sees.
        const mtimesNs = st.map((s, i) => String(i === 1 ? s.mtimeNs - 1n : s.mtimeNs));
        const got = await c.readFilesForPack(paths, 1, st.map((s) => Number(s.size)), {
          name: FORK_NAME,
          mtimesNs,
        });
        assert.deepEqual(got.map((r) => r.error), ["", "", ""]);
        if (c.implementation === "portable") {
          // No forks there: the caller keeps the state itself.
          assert.deepEqual(got.map((r) => r.forked), [false, false, false]);
          return;
        }
        assert.deepEqual(got.map((r) => r.forked), [true, false, false]);
        assert.deepEqual(decodeForkState(c.forkRead(paths[0]!, FORK_NAME)!), {
          hash: c.blake3(text),
          size: text.length,
          mtimeNs: mtimesNs[0],
        });
        assert.equal(c.forkRead(paths[1]!, FORK_NAME), null, "changed since listed");
        assert.equal(c.forkRead(join(dir, "target"), FORK_NAME), null, "not through a link");
        assert.equal(statSync(paths[0]!, { bigint: true }).mtimeNs, st[0]!.mtimeNs);
        await assert.rejects(
          c.readFilesForPack(paths, 1, undefined, { name: FORK_NAME, mtimesNs }),
          /forks need a size and an mtime/,
        );
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    test(`${c.implementation}: reading files to back them up leaves their access times alone`, {
      skip: process.platform !== "linux" && "O_NOATIME is Linux's",
    }, async () => {
      const dir = await mkdtemp(join(tmpdir(), "cncop-noatime-"));
      try {
        const small = join(dir, "small");
        const large = join(dir, "large");
        await writeFile(small, text);
        await writeFile(large, randomBytes(3 << 20));
        // An access time before the mtime: a plain read (relatime too) would move it.
        const old = new Date(1_000_000_000_000);
        for (const p of [small, large]) utimesSync(p, old, statSync(p).mtime);
        await c.readFilesForPack([small], 1, [text.length]);
        await c.blake3File(large);
        const st = statSync(large, { bigint: true });
        await c.writeFilePack({
          source: large,
          out: join(dir, "large.pack"),
          prefix: new Uint8Array(4),
          suffix: new Uint8Array(4),
          level: 1,
          size: Number(st.size),
          mtimeNs: String(st.mtimeNs),
        });
        for (const p of [small, large]) assert.equal(statSync(p).atimeMs, old.getTime(), p);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    test(`${c.implementation}: syncFs flushes where the platform can, refuses a missing path`, async () => {
      const dir = await mkdtemp(join(tmpdir(), "cncop-syncfs-"));
      try {
        await writeFile(join(dir, "f"), "x");
        const r = await c.syncFs(dir);
        assert.equal(r, c.implementation === "native" && process.platform === "linux");
        await assert.rejects(c.syncFs(join(dir, "missing")));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});
