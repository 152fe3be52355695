import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, beforeEach, describe, test } from "node:test";
import { native } from "../../src/native/mod.ts";
import { SmallBlobs } from "../../src/network/small_blobs.ts";

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "cncop-small-"))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A kept pack file holding `frames` back to back (raw bodies), and where each lies. */
function packOf(name: string, frames: string[]) {
  const bodies = frames.map((f) => Buffer.from(f));
  writeFileSync(join(dir, name), Buffer.concat(bodies));
  let offset = 0;
  return bodies.map((b) => {
    const at = { hash: native.blake3(b), size: b.length, compression: "none" as const, offset };
    offset += b.length;
    return { ...at, length: b.length };
  });
}

const open = () =>
  new SmallBlobs(join(dir, "small.db"), () => new Uint8Array(), (_d, p) => join(dir, p));

describe("small.db", () => {
  test("a pack's blobs are found by hash, once each, through the short hash index", () => {
    const s = open();
    try {
      const blobs = packOf("p1", ["alpha", "beta", "alpha"]);
      assert.equal(s.putPacked(1, "p1", blobs), true);
      assert.equal(Buffer.from(s.get(1, blobs[1]!.hash)!).toString(), "beta");
      assert.equal(s.size(1, blobs[0]!.hash), 5);
      assert.equal(s.get(2, blobs[0]!.hash), undefined, "another device's blob is not found");
      // The same content again, in another pack: still one row, its age refreshed.
      packOf("p2", ["alpha"]);
      s.putPacked(1, "p2", [{ ...blobs[0]!, offset: 0 }]);
      assert.deepEqual([...s.list()].map((b) => b.size).sort(), [4, 5]);
      assert.equal(s.packUse(1, "p2").blobs, 0);
      assert.equal(s.remove(1, blobs[0]!.hash, Date.now() + 1), true);
      assert.equal(s.size(1, blobs[0]!.hash), undefined);
    } finally {
      s.close();
    }
    const db = new DatabaseSync(join(dir, "small.db"));
    try {
      const plan = db.prepare(
        "EXPLAIN QUERY PLAN SELECT size FROM packed WHERE substr(hash, 1, 12) = substr(?2, 1, 12) AND device = ?1 AND hash = ?2",
      ).all(1, "ab") as { detail: string }[];
      assert.match(plan.map((p) => p.detail).join(), /USING INDEX packed_hash/);
    } finally {
      db.close();
    }
  });

  test("a small.db whose packed table has the first version's (device, hash) key keeps its rows", () => {
    const blobs = packOf("p1", ["one", "two"]);
    const db = new DatabaseSync(join(dir, "small.db"));
    db.exec("PRAGMA page_size = 16384");
    db.exec("PRAGMA journal_mode = TRUNCATE");
    db.exec(`CREATE TABLE packed (
      device INTEGER NOT NULL, hash TEXT NOT NULL, size INTEGER NOT NULL,
      compression TEXT NOT NULL CHECK (compression IN ('zstd', 'none')), pack TEXT NOT NULL,
      offset INTEGER NOT NULL, length INTEGER NOT NULL, touched INTEGER NOT NULL,
      PRIMARY KEY (device, hash))`);
    db.exec("CREATE INDEX packed_pack ON packed (device, pack)");
    const put = db.prepare("INSERT INTO packed VALUES (1, ?, ?, 'none', 'p1', ?, ?, 1)");
    for (const b of blobs) put.run(b.hash, b.size, b.offset, b.length);
    db.close();

    const s = open();
    try {
      assert.equal(Buffer.from(s.get(1, blobs[1]!.hash)!).toString(), "two");
      assert.equal(s.packUse(1, "p1").blobs, 2);
      s.putPacked(1, "p1", blobs); // again: nothing doubles
      assert.equal([...s.list()].length, 2);
    } finally {
      s.close();
    }
    const after = new DatabaseSync(join(dir, "small.db"));
    try {
      const idx = after.prepare("SELECT name, origin FROM pragma_index_list('packed')").all() as {
        name: string;
        origin: string;
      }[];
      assert.deepEqual(idx.map((i) => i.origin).filter((o) => o === "pk"), []);
      assert.deepEqual(idx.map((i) => i.name).sort(), ["packed_hash", "packed_pack"]);
    } finally {
      after.close();
    }
  });
});
