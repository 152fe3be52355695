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
  utimesSync,
} from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { PackBuilder } from "../../src/ccs/pack_writer.ts";
import { readPackEntries } from "../../src/ccs/pack_reader.ts";
import { native } from "../../src/native/mod.ts";
import type { PackedBlob } from "../../src/network/small_blobs.ts";
import { LocalBlobStore } from "../../src/network/storage_local.ts";
import { addHeader } from "../helpers/packs.ts";
import { tempDir } from "../helpers/tmp.ts";

const elsewhere: string[] = [];
after(() => {
  for (const d of elsewhere) rmSync(d, { recursive: true, force: true });
});

/** A verified pack of `n` small adds at `path`, and where its frames lie. */
async function pack(path: string, n: number): Promise<{ sha256: string; blobs: PackedBlob[] }> {
  const b = await PackBuilder.create(path);
  for (let i = 0; i < n; i++) {
    const body = Buffer.concat([Buffer.from(`file ${i}\n`.repeat(50)), randomBytes(100)]);
    await b.add(addHeader("1", `f${i}`, body), body);
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

/** Runs `fn` with a store on `data`, closed after. */
async function withStore<T>(data: string, fn: (s: LocalBlobStore) => Promise<T>): Promise<T> {
  const store = new LocalBlobStore(data);
  await store.init();
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}

async function content(store: LocalBlobStore, hash: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of store.read(1, hash)) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Every blob of `p` reads back as its hash says. */
async function readsBack(store: LocalBlobStore, p: { blobs: PackedBlob[] }): Promise<void> {
  for (const b of p.blobs) assert.equal(native.blake3(await content(store, b.hash)), b.hash);
}

test("a pack on another file system (no hard link) is kept as a copy, and reads back", async (t) => {
  const data = tempDir();
  const other = existsSync("/dev/shm") ? mkdtempSync("/dev/shm/cncop-kept-") : undefined;
  if (other) elsewhere.push(other);
  if (!other || statSync(other).dev === statSync(data).dev) {
    t.skip("no second file system at /dev/shm");
    return;
  }
  await withStore(data, async (store) => {
    const file = join(other, "upload.part");
    const p = await pack(file, 5);
    await store.putPacked(1, { path: file, sha256: p.sha256 }, p.blobs);
    const kept = join(data, "blobs", "packs", "1", `${p.sha256}.pack`);
    assert.ok(existsSync(kept), "copied under its SHA-256");
    assert.notEqual(statSync(kept).ino, statSync(file).ino, "a copy, not a link");
    rmSync(file);
    await readsBack(store, p);
    assert.deepEqual(readdirSync(join(data, "tmp")), [], "no temp file left");
  });
});

test("an apply makes an old kept pack new again, and names one a sweep took away", async () => {
  const data = tempDir();
  await withStore(data, async (store) => {
    const file = join(data, "upload.part");
    const p = await pack(file, 3);
    await store.putPacked(1, { path: file, sha256: p.sha256 }, p.blobs.slice(0, 1));
    const kept = join(data, "blobs", "packs", "1", `${p.sha256}.pack`);
    // Kept long ago (EEXIST now): its time is set to now, so a sweep leaves it alone.
    const old = new Date(Date.now() - 86400_000);
    utimesSync(kept, old, old);
    await store.putPacked(1, { path: file, sha256: p.sha256 }, p.blobs.slice(0, 2));
    assert.ok(statSync(kept).mtimeMs > Date.now() - 60_000, "made new again");
    rmSync(kept); // as a sweep would, while no row referred to the rest
    await store.putPacked(1, { path: file, sha256: p.sha256 }, p.blobs);
    assert.ok(existsSync(kept));
    await readsBack(store, p);
    // Old enough, but referenced and in full use: the sweep keeps it.
    const sweep = await store.sweepPacks(Date.now() + 60_000);
    assert.deepEqual(sweep, { removed: 0, unpacked: 0, bytes: 0 });
    assert.ok(existsSync(kept));
  });
});

test("after a crash inside a sweep's retire: a pack whose rows came back gets its name back, another goes", async () => {
  const data = tempDir();
  const file = join(data, "upload.part");
  const p = await pack(file, 3);
  await withStore(data, (store) => store.putPacked(1, { path: file, sha256: p.sha256 }, p.blobs));
  const dir = join(data, "blobs", "packs", "1");
  const kept = join(dir, `${p.sha256}.pack`);
  renameSync(kept, `${kept}.dead-0a1b2c`); // renamed, and then the commit never happened
  copyFileSync(file, join(dir, `${"cd".repeat(32)}.pack.dead-3d4e5f`)); // no row refers to it
  await withStore(data, async (store) => {
    assert.deepEqual(readdirSync(dir), [`${p.sha256}.pack`]);
    await readsBack(store, p);
  });
});
