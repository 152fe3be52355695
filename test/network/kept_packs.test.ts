import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { copyFile, readdir, readFile, utimes } from "node:fs/promises";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, test } from "node:test";
import { PackBuilder, packDelete } from "../../src/ccs/pack_writer.ts";
import { restoreFiles } from "../../src/network/restore.ts";
import { useCncopd } from "../helpers/cncopd.ts";
import { addHeader } from "../helpers/packs.ts";

const net = useCncopd("cncop-kept-");

const packsDir = () => join(net.d.dataDir, "blobs", "packs", "1");
const keptPacks = async () => (await readdir(packsDir()).catch(() => [])).sort();

function rows(sql: string): number {
  const db = new DatabaseSync(join(net.d.dataDir, "blobs", "small.db"));
  try {
    return (db.prepare(sql).get() as { n: number }).n;
  } finally {
    db.close();
  }
}

async function prune(grace = 0): Promise<string> {
  const r = await net.d.admin(["prune", "--grace", String(grace)]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

describe("kept packs: a verified pack is the container of its small blobs", () => {
  test("the pack is kept once; its blobs restore; prune unpacks it when mostly unused, then removes it", async () => {
    const job = "31";
    await net.client.setRetention(job, 0);
    const files = new Map<string, Buffer>();
    const b = await PackBuilder.create(join(net.work, "a.pack"));
    for (let i = 0; i < 40; i++) {
      const body = i % 2 ? randomBytes(5000) : Buffer.from(`text ${i}\n`.repeat(200));
      const path = `${i < 30 ? "a" : "b"}/f${i}`;
      files.set(path, body);
      await b.add(addHeader(job, path, body), body);
    }
    const w = await b.finish();
    await net.client.uploadPack(job, w.path, { chunkSize: 32 * 1024 });
    const before = await keptPacks();
    assert.deepEqual(before, [`${w.sha256}.pack`], "kept under its SHA-256");
    assert.deepEqual(await readFile(join(packsDir(), before[0]!)), await readFile(w.path));
    assert.equal(rows("SELECT count(*) AS n FROM packed"), 40);
    assert.equal(rows("SELECT count(*) AS n FROM small"), 0, "no frame written twice");

    const out = join(net.work, "r1");
    await restoreFiles({ client: net.client, job, to: out });
    for (const [path, body] of files) {
      assert.deepEqual(await readFile(join(out, ...path.split("/"))), body, path);
    }

    // Three quarters of the blobs die: what is left moves into small.db, the pack goes.
    await net.client.uploadPack(
      job,
      (await packDelete(join(net.work, "d.pack"), { job, path: "a", folder: true })).path,
    );
    assert.match(await prune(), /, 1 kept packs \(\d+ bytes\)/);
    assert.deepEqual(await keptPacks(), []);
    assert.equal(rows("SELECT count(*) AS n FROM packed"), 0);
    assert.equal(rows("SELECT count(*) AS n FROM small"), 10);
    const out2 = join(net.work, "r2");
    await restoreFiles({ client: net.client, job, to: out2 });
    for (const [path, body] of files) {
      if (path.startsWith("b/")) {
        assert.deepEqual(await readFile(join(out2, ...path.split("/"))), body, path);
      }
    }
    const c = await net.d.admin(["check"]);
    assert.equal(c.code, 0, c.stdout);
    assert.match(c.stdout, / 0 problems/);
  });

  test("a pack mostly in use stays; one with no blobs left goes, but not within the grace period", async () => {
    const job = "32";
    await net.client.setRetention(job, 0);
    const b = await PackBuilder.create(join(net.work, "k.pack"));
    for (let i = 0; i < 10; i++) {
      const body = randomBytes(3000);
      await b.add(addHeader(job, `k/f${i}`, body), body);
    }
    const w = await b.finish();
    await net.client.uploadPack(job, w.path);
    await net.client.uploadPack(
      job,
      (await packDelete(join(net.work, "k1.pack"), { job, path: "k/f0" })).path,
    );
    const kept = `${w.sha256}.pack`;
    assert.match(await prune(), /, 0 kept packs/);
    assert.ok((await keptPacks()).includes(kept), "nine tenths in use: kept");
    assert.equal(rows(`SELECT count(*) AS n FROM packed WHERE pack = '${w.sha256}'`), 9);

    // A pack file no row refers to (a crash between keeping it and its commit).
    const orphan = join(packsDir(), `${"ab".repeat(32)}.pack`);
    await copyFile(w.path, orphan);
    assert.match(await prune(3600), /, 0 kept packs/);
    assert.ok((await keptPacks()).includes(`${"ab".repeat(32)}.pack`), "fresh: kept");
    const old = new Date(Date.now() - 2 * 3600_000);
    await utimes(orphan, old, old);
    assert.match(await prune(3600), /, 1 kept packs/);
    assert.ok(!(await keptPacks()).includes(`${"ab".repeat(32)}.pack`), "old and unused: gone");
    assert.ok((await keptPacks()).includes(kept));
  });
});
