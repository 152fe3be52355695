import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import type { PackHeader } from "../../src/ccs/pack_format.ts";
import { baseHeader, PackBuilder } from "../../src/ccs/pack_writer.ts";
import { readPackEntries } from "../../src/ccs/pack_reader.ts";
import { native } from "../../src/native/mod.ts";
import type { PackedBlob } from "../../src/network/small_blobs.ts";
import { LocalBlobStore } from "../../src/network/storage_local.ts";
import { tempDir } from "../helpers/tmp.ts";

const elsewhere: string[] = [];
after(() => {
  for (const d of elsewhere) rmSync(d, { recursive: true, force: true });
});

/** A verified pack of `n` small adds at `path`, and where its frames lie. */
async function pack(path: string, n: number): Promise<{ sha256: string; blobs: PackedBlob[] }> {
  const b = await PackBuilder.create(path);
  const bodies: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const body = Buffer.concat([Buffer.from(`file ${i}\n`.repeat(50)), randomBytes(100)]);
    bodies.push(body);
    const h: PackHeader = Object.assign(baseHeader("add", { job: "1", path: `f${i}` }), {
      size: body.length,
      bodySize: body.length,
      hash: native.blake3(body),
      mtimeNs: "1700000000000000000",
      mode: 0o644,
    });
    await b.add(h, body);
  }
  const w = await b.finish();
  const blobs: PackedBlob[] = [];
  await readPackEntries(path, {
    frames: {
      wants: () => true,
      take: (h, _i, at) =>
        blobs.push({ hash: h.hash, size: h.size, compression: h.compression, ...at }),
    },
  });
  return { sha256: w.sha256, blobs };
}

async function content(store: LocalBlobStore, hash: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of store.read(1, hash)) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

test("a pack on another file system (no hard link) is kept as a copy, and reads back", async () => {
  if (!existsSync("/dev/shm")) return;
  const data = tempDir();
  const other = mkdtempSync("/dev/shm/cncop-kept-");
  elsewhere.push(other);
  if (statSync(other).dev === statSync(data).dev) return; // one file system: nothing to show
  const store = new LocalBlobStore(data);
  await store.init();
  try {
    const file = join(other, "upload.part");
    const p = await pack(file, 5);
    await store.putPacked(1, { path: file, sha256: p.sha256 }, p.blobs);
    const kept = join(data, "blobs", "packs", "1", `${p.sha256}.pack`);
    assert.ok(existsSync(kept), "copied under its SHA-256");
    assert.notEqual(statSync(kept).ino, statSync(file).ino, "a copy, not a link");
    rmSync(file);
    for (const b of p.blobs) assert.equal(native.blake3(await content(store, b.hash)), b.hash);
    assert.deepEqual(readdirSync(join(data, "tmp")), [], "no temp file left");
  } finally {
    store.close();
  }
});

test("a pack taken away before its rows were written is named again by the apply", async () => {
  const data = tempDir();
  const store = new LocalBlobStore(data);
  await store.init();
  try {
    const file = join(data, "upload.part");
    const p = await pack(file, 3);
    await store.putPacked(1, { path: file, sha256: p.sha256 }, p.blobs.slice(0, 1));
    const kept = join(data, "blobs", "packs", "1", `${p.sha256}.pack`);
    rmSync(kept); // as a sweep would, while no row referred to the rest
    await store.putPacked(1, { path: file, sha256: p.sha256 }, p.blobs);
    assert.ok(existsSync(kept));
    for (const b of p.blobs) assert.equal(native.blake3(await content(store, b.hash)), b.hash);
    // Old enough, but referenced and in full use: the sweep keeps it.
    assert.deepEqual(await store.sweepPacks(Date.now() + 60_000), {
      removed: 0,
      unpacked: 0,
      bytes: 0,
    });
    assert.ok(existsSync(kept));
  } finally {
    store.close();
  }
});

test("after a crash inside a sweep's retire: a pack whose rows came back gets its name back, another goes", async () => {
  const data = tempDir();
  const store = new LocalBlobStore(data);
  await store.init();
  const file = join(data, "upload.part");
  const p = await pack(file, 3);
  await store.putPacked(1, { path: file, sha256: p.sha256 }, p.blobs);
  store.close();
  const dir = join(data, "blobs", "packs", "1");
  const kept = join(dir, `${p.sha256}.pack`);
  renameSync(kept, `${kept}.dead-0a1b2c`); // renamed, and then the commit never happened
  const orphan = join(dir, `${"cd".repeat(32)}.pack.dead-3d4e5f`);
  copyFileSync(file, orphan); // a retired pack no row refers to
  const again = new LocalBlobStore(data);
  await again.init();
  try {
    assert.deepEqual(readdirSync(dir), [`${p.sha256}.pack`]);
    for (const b of p.blobs) assert.equal(native.blake3(await content(again, b.hash)), b.hash);
  } finally {
    again.close();
  }
});
