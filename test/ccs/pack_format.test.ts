import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { PackRejectedError } from "../../src/core/errors.ts";
import { checkPackPath, PACK_FORMAT, type PackHeader } from "../../src/ccs/pack_format.ts";
import {
  baseHeader,
  packAdd,
  PackBuilder,
  packDelete,
  packMove,
  packUpdate,
  writePack,
} from "../../src/ccs/pack_writer.ts";
import { readPack, readPackEntries, readPackHeader } from "../../src/ccs/pack_reader.ts";
import { native } from "../../src/native/mod.ts";
import { addHeader } from "../helpers/packs.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "cncop-pack-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function* one(buf: Uint8Array) {
  yield buf;
}

function header(over: Partial<PackHeader>): PackHeader {
  return {
    format: PACK_FORMAT,
    kind: "add",
    job: "7",
    path: "a.txt",
    size: 0,
    mtimeNs: "0",
    mode: 0o644,
    hash: "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    bodySize: 0,
    compression: "zstd",
    program: "test",
    programVersion: "1",
    created: "2026-01-01T00:00:00Z",
    ...over,
  };
}

describe("pack writer and reader", () => {
  test("packAdd() then readPack() gives the content back byte for byte", async () => {
    const src = join(dir, "src.bin");
    // Random bytes make several frames; the path's characters of several bytes move the
    // header's hash, which is written in place once the file is read.
    const data = Buffer.concat([randomBytes(2_500_000), Buffer.alloc(2_000_000, 7)]);
    await writeFile(src, data);
    const w = await packAdd(join(dir, "a.pack"), {
      job: "7",
      path: "d/é日本/src.bin",
      source: src,
    });
    assert.equal(w.header.size, data.length);
    assert.ok(w.bytes < data.length, "compressed");
    const body = join(dir, "a.body");
    const h = await readPack(w.path, { bodyTo: body });
    assert.equal(h.path, "d/é日本/src.bin");
    assert.equal(h.hash, native.blake3(data));
    assert.deepEqual(await readFile(body), data);
    assert.equal((await readPackHeader(w.path)).kind, "add");
  });

  test("an empty file packs and reads", async () => {
    const src = join(dir, "empty");
    await writeFile(src, "");
    const w = await packAdd(join(dir, "e.pack"), { job: "7", path: "empty", source: src });
    const h = await readPack(w.path, { bodyTo: join(dir, "e.body") });
    assert.equal(h.size, 0);
    assert.equal((await stat(join(dir, "e.body"))).size, 0);
  });

  test("packMove(), packDelete() and packUpdate() headers round-trip", async () => {
    const m = await packMove(join(dir, "m.pack"), {
      job: "7",
      path: "a",
      newPath: "b",
      folder: true,
    });
    assert.equal((await readPack(m.path)).newPath, "b");
    const d = await packDelete(join(dir, "d.pack"), { job: "7", path: "x/y" });
    assert.equal((await readPack(d.path)).kind, "delete");
    const delta = join(dir, "delta");
    await writeFile(delta, randomBytes(1000));
    const u = await packUpdate(join(dir, "u.pack"), {
      job: "7",
      path: "a",
      deltaPath: delta,
      base: 3,
      size: 10,
      hash: "0".repeat(64),
      mtimeNs: 5n,
      mode: 0o600,
    });
    const body = join(dir, "u.body");
    const h = await readPack(u.path, { bodyTo: body });
    assert.equal(h.base, 3);
    assert.deepEqual(await readFile(body), await readFile(delta));
  });

  test("packAdd() refuses a source that changed since it was hashed", async () => {
    const src = join(dir, "chg");
    await writeFile(src, "hello");
    await assert.rejects(
      packAdd(join(dir, "chg.pack"), { job: "7", path: "chg", source: src, hash: "1".repeat(64) }),
      { name: "SourceChangedError" },
    );
  });

  test("readPack() rejects truncation, corruption and trailing bytes", async () => {
    const src = join(dir, "t.bin");
    await writeFile(src, randomBytes(50_000));
    const w = await packAdd(join(dir, "t.pack"), { job: "7", path: "t", source: src });
    const bytes = await readFile(w.path);
    for (const cut of [0, 5, 12, 40, bytes.length - 40, bytes.length - 1]) {
      const body = join(dir, `cut${cut}`);
      await assert.rejects(
        readPack(one(bytes.subarray(0, cut)), { bodyTo: body }),
        PackRejectedError,
      );
      await assert.rejects(stat(body), { code: "ENOENT" }, "no body left behind");
    }
    const flipped = Buffer.from(bytes);
    flipped[bytes.length - 100]! ^= 0x40;
    await assert.rejects(readPack(one(flipped)), PackRejectedError);
    await assert.rejects(
      readPack(one(Buffer.concat([bytes, Buffer.from("x")]))),
      /after its checksum/,
    );
    await assert.rejects(readPack(one(bytes), { maxBodySize: 1000 }), /larger than the limit/);
  });

  test("checkPackPath() rejects hostile paths", () => {
    for (
      const p of [
        "../etc/passwd",
        "a/../../b",
        "/etc/passwd",
        "a\u0000b",
        "",
        "a//b",
        "./a",
        "C:/x",
        "\\\\srv\\x",
        "a/",
        "a/.",
        "a/..",
        "a/./b",
        "..",
        ".",
        "a\\..\\b",
        "a\\\\b",
      ]
    ) {
      assert.throws(() => checkPackPath(p), PackRejectedError, p);
    }
    // Dots that are part of a name are names.
    for (const p of ["a/b c/ü.txt", ".hidden", "a/.b", "a/...", "...", "a..b/c", "a/b.", "a\\b"]) {
      assert.equal(checkPackPath(p), p);
    }
  });

  test("writePack() refuses a hostile header and readPack() refuses one written by hand", async () => {
    await assert.rejects(writePack(join(dir, "h.pack"), header({ path: "../x" })), /segment/);
    // Craft a pack with a hostile path bypassing the writer's check.
    const hb = Buffer.from(JSON.stringify(header({ path: "/abs" })));
    const len = Buffer.alloc(4);
    len.writeUInt32BE(hb.length);
    const buf = Buffer.concat([Buffer.from("CNCOPPK\u0002", "latin1"), len, hb, Buffer.alloc(36)]);
    await assert.rejects(readPack(one(buf)), /absolute/);
  });

  test("readPack() stops a decompression bomb at the declared size", async () => {
    const src = join(dir, "bomb");
    await writeFile(src, Buffer.alloc(20_000_000));
    const w = await packAdd(join(dir, "bomb.pack"), { job: "7", path: "bomb", source: src });
    // Rewrite the header to declare a small size while keeping the 20 MB body.
    const bytes = await readFile(w.path);
    const hlen = bytes.readUInt32BE(8);
    const h = JSON.parse(bytes.subarray(12, 12 + hlen).toString()) as PackHeader;
    h.size = 100;
    h.bodySize = 100;
    const nh = Buffer.from(JSON.stringify(h));
    const nl = Buffer.alloc(4);
    nl.writeUInt32BE(nh.length);
    const forged = Buffer.concat([bytes.subarray(0, 8), nl, nh, bytes.subarray(12 + hlen)]);
    await assert.rejects(
      readPack(one(forged), { bodyTo: join(dir, "bomb.body") }),
      // One frame (the writer's, of 20 MB of zeros) is decoded in one call bounded by the
      // declared size; several stream through a decoder that stops there.
      /expands beyond|larger than its declared 100 bytes/,
    );
  });

  test("PackBuilder: many entries round-trip; incompressible bodies are stored raw", async () => {
    const b = await PackBuilder.create(join(dir, "multi.pack"));
    const bodies: Buffer[] = [];
    for (let i = 0; i < 40; i++) {
      const body = i % 2 ? randomBytes(i * 100) : Buffer.alloc(i * 1000, i);
      bodies.push(body);
      const h = baseHeader("add", { job: "7", path: `d/f${i}` });
      Object.assign(h, {
        size: body.length,
        bodySize: body.length,
        hash: native.blake3(body),
        mode: 0o600,
      });
      await b.add(h, body);
    }
    await b.add(Object.assign(baseHeader("move", { job: "7", path: "d" }), { newPath: "e" }));
    await b.add(baseHeader("delete", { job: "7", path: "x" }));
    const w = await b.finish();
    assert.equal(w.headers.length, 42);
    assert.equal(w.headers[1]!.compression, "none", "random bytes do not shrink");
    assert.equal(w.headers[2]!.compression, "zstd");
    const headers = await readPackEntries(w.path, {
      bodyTo: (h, i) => (h.kind === "add" ? join(dir, `multi-${i}.body`) : undefined),
    });
    assert.deepEqual(headers.map((h) => h.kind).slice(-3), ["add", "move", "delete"]);
    for (const [i, body] of bodies.entries()) {
      assert.deepEqual(await readFile(join(dir, `multi-${i}.body`)), body);
    }
    await assert.rejects(readPack(w.path), /more than 1 entries/);
  });

  test("PackBuilder: two packs filled at once, each over many flushes, read back whole", async () => {
    // Flushes reuse their buffers: one still being written must not be handed to the other.
    const packs = await Promise.all(
      ["a", "b"].map((n) => PackBuilder.create(join(dir, `both-${n}.pack`))),
    );
    const bodies: Buffer[][] = [[], []];
    // Each pack is filled in order (as the enqueuer's writer does); the two at once.
    const fill = async (k: number) => {
      for (let i = 0; i < 200; i++) {
        const body = randomBytes(30_000 + i * 97 + k);
        bodies[k]!.push(body);
        const h = addHeader("7", `d/f${i}`, body);
        await packs[k]!.addEncoded({ ...h, compression: "none" }, body);
      }
    };
    await Promise.all([fill(0), fill(1)]);
    const written = await Promise.all(packs.map((b) => b.finish()));
    for (const [k, w] of written.entries()) {
      assert.ok(w.bytes > 4 << 20, "several flushes of a megabyte");
      await readPackEntries(w.path, { bodyTo: (_h, i) => join(dir, `both-${k}-${i}.body`) });
      for (const [i, body] of bodies[k]!.entries()) {
        assert.deepEqual(await readFile(join(dir, `both-${k}-${i}.body`)), body, `${k}/${i}`);
      }
    }
  });

  test("readPackEntries() reads a pack cut into chunks of any size, and its checksum still catches a flipped byte", async () => {
    const b = await PackBuilder.create(join(dir, "chunked.pack"));
    const bodies: Buffer[] = [];
    for (let i = 0; i < 12; i++) {
      const body = i % 3 ? randomBytes(i * 300) : Buffer.alloc(i * 700, i);
      bodies.push(body);
      await b.add(addHeader("7", `c/f${i}`, body), body);
    }
    const bytes = await readFile((await b.finish()).path);
    // Chunks of 1 byte, of 7, and of random sizes: entries, frames and the trailer straddle
    // the chunks in every way.
    async function* cut(buf: Uint8Array, size: () => number) {
      for (let at = 0; at < buf.length;) {
        const n = Math.min(size(), buf.length - at);
        yield buf.slice(at, at + n);
        at += n;
      }
    }
    const sizes = [() => 1, () => 7, () => 1 + Math.floor(Math.random() * 5000)];
    const whole = (await readPackEntries(one(bytes))).map((h) => h.path);
    assert.equal(whole.length, 12);
    for (const size of sizes) {
      assert.deepEqual((await readPackEntries(cut(bytes, size))).map((h) => h.path), whole);
    }
    // A flipped byte in a body (stored raw: only the checksum can tell) or in the trailer.
    const rawBody = bytes.indexOf(bodies[2]!.subarray(100, 132)) + 10;
    assert.ok(rawBody > 10);
    for (const at of [rawBody, bytes.length - 1]) {
      const bad = Buffer.from(bytes);
      bad[at]! ^= 1;
      for (const size of sizes) {
        await assert.rejects(
          readPackEntries(cut(bad, size), { verifyContent: false }),
          /checksum does not match/,
        );
      }
    }
  });

  test("readPackEntries() refuses mixed jobs, too many entries and a small-entry bomb", async () => {
    const two = await PackBuilder.create(join(dir, "jobs.pack"));
    await two.add(baseHeader("delete", { job: "7", path: "a" }));
    await two.add(baseHeader("delete", { job: "8", path: "b" }));
    await assert.rejects(readPackEntries((await two.finish()).path), /different jobs/);

    const many = await PackBuilder.create(join(dir, "many.pack"));
    for (let i = 0; i < 5; i++) await many.add(baseHeader("delete", { job: "7", path: `p${i}` }));
    const mp = (await many.finish()).path;
    await assert.rejects(readPackEntries(mp, { maxEntries: 4 }), /more than 4 entries/);
    assert.equal((await readPackEntries(mp, { maxEntries: 5 })).length, 5);

    // An entry of one frame that inflates beyond its declared size, with a valid trailer.
    const zeros = Buffer.alloc(1_000_000);
    const h = header({ path: "bomb", size: 1000, bodySize: 1000, hash: native.blake3(zeros) });
    const hb = Buffer.from(JSON.stringify(h));
    const z = native.zstdCompress(zeros, 3);
    const u32 = (n: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      return b;
    };
    const bodyless = Buffer.concat([
      Buffer.from("CNCOPPK\u0002", "latin1"),
      u32(hb.length),
      hb,
      u32(z.length),
      z,
      u32(0),
      u32(0),
    ]);
    const sha = createHash("sha256").update(bodyless).digest();
    const out = join(dir, "bomb.body");
    await assert.rejects(
      readPackEntries(one(Buffer.concat([bodyless, sha])), { bodyTo: () => out }),
      (e: unknown) =>
        e instanceof PackRejectedError && /larger than its declared 1000/.test(e.message),
    );
    await assert.rejects(stat(out), /ENOENT/, "no body file left behind");
  });

  test("a format 1 pack (one entry, no end marker) is still read", async () => {
    const h = header({ format: 1, kind: "delete", path: "old/style", hash: "" });
    const hb = Buffer.from(JSON.stringify(h));
    const len = Buffer.alloc(4);
    len.writeUInt32BE(hb.length);
    const body = Buffer.concat([Buffer.from("CNCOPPK\u0001", "latin1"), len, hb, Buffer.alloc(4)]);
    const sha = createHash("sha256").update(body).digest();
    const got = await readPack(one(Buffer.concat([body, sha])));
    assert.equal(got.path, "old/style");
    assert.equal(got.format, 1);
  });

  test("a bad body found by a deferred check while the pack is still read rejects it cleanly", async () => {
    const b = await PackBuilder.create(join(dir, "deferred.pack"));
    for (let i = 0; i < 600; i++) {
      const body = Buffer.from(`body ${i}\n`.repeat(20));
      const h = baseHeader("add", { job: "7", path: `f${i}` });
      // Entry 1's hash is wrong: its batch fails long before the reader reaches the end.
      const hash = native.blake3(i === 1 ? Buffer.from("other") : body);
      Object.assign(h, { size: body.length, bodySize: body.length, hash });
      await b.add(h, body);
    }
    const bytes = await readFile((await b.finish()).path);
    async function* slow() {
      for (let o = 0; o < bytes.length; o += 1024) {
        await new Promise((r) => setImmediate(r));
        yield bytes.subarray(o, o + 1024);
      }
    }
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on("unhandledRejection", onUnhandled);
    try {
      const taken: string[] = [];
      await assert.rejects(
        readPackEntries(slow(), {
          frames: { wants: () => true, take: (h) => taken.push(h.path) },
        }),
        (e: unknown) => e instanceof PackRejectedError && /hash/.test(e.message),
      );
      assert.deepEqual(taken, [], "nothing is handed out of a rejected pack");
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(unhandled, [], "no unhandled rejection");
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });
});
