import assert from "node:assert/strict";
import { test } from "node:test";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { openWorkDb, Stage, type WorkDb } from "../../src/ccs/work_queue.ts";
import { tempDir } from "../helpers/tmp.ts";

/** ADDs a, b (pack /p/1) and c (pack /p/2) of `job`, ready and claimed by dequeuer 111. */
function claimedTwoPacks(w: WorkDb, job: number): number[] {
  const ids = adds(w, job, "a", "b", "c");
  ids.forEach((id, i) => w.markReady(id, i < 2 ? "/p/1" : "/p/2", 1, null));
  assert.equal(w.claim(job, 111, 10).length, 3);
  return ids;
}

/** Plans an ADD of each path for `job` in session "s"; returns their ids. */
function adds(w: WorkDb, job: number, ...paths: string[]): number[] {
  return w.tx(() => w.addItems(job, "s", paths.map((path) => ({ kind: "ADD" as const, path }))));
}

test("claim() hands out the lowest unfinished stage first, once", () => {
  const w = openWorkDb(join(tempDir(), "work.db"));
  const [mv, a, b] = w.tx(() =>
    w.addItems(1, "s", [
      { kind: "MOVE", path: "A", newPath: "B", folder: true, stage: Stage.folderMove },
      { kind: "ADD", path: "x", size: 3 },
      { kind: "UPDATE", path: "B/y", baseVersion: 4 },
    ])
  );
  w.markReady(a!, "/p/a", 10, null);
  w.markReady(b!, "/p/b", 10, null);
  assert.deepEqual(w.claim(1, 111, 10), [], "the move is still planned: nothing of stage 2");
  w.markReady(mv!, "/p/mv", 5, null);
  const first = w.claim(1, 111, 10);
  assert.deepEqual(first.map((i) => i.id), [mv]);
  assert.deepEqual(w.claim(1, 222, 10), [], "claimed items are not handed out twice");
  w.removeItems([mv!]);
  assert.deepEqual(w.claim(1, 111, 10).map((i) => i.kind), ["ADD", "UPDATE"]);
  w.close();
});

test("removeClaimedPack() removes exactly one claimer's items of a pack, or nothing", () => {
  const w = openWorkDb(join(tempDir(), "work.db"));
  claimedTwoPacks(w, 5);
  assert.throws(
    () => w.tx(() => w.removeClaimedPack(5, "/p/1", 111, 1)),
    /2 claimed item\(s\) removed, not 1/,
  );
  assert.equal(w.items(5).length, 3, "a count that does not match rolls the removal back");
  w.tx(() => w.removeClaimedPack(5, "/p/1", 222, 0)); // another claimer's: nothing
  w.tx(() => w.removeClaimedPack(5, "/p/1", 111, 2));
  assert.deepEqual(w.items(5).map((i) => i.path), ["c"], "the other pack's item stays");
  w.close();
});

test("discardLeftovers() keeps only items a live dequeuer is sending", () => {
  const w = openWorkDb(join(tempDir(), "work.db"));
  const ids = adds(w, 2, "a", "b", "c");
  for (const id of ids) w.markReady(id, `/p/${id}`, 1, null);
  w.claim(2, process.pid, 1); // a: live claim
  w.claim(2, 999999999, 1); // b: claimed by a dequeuer that is gone
  const r = w.discardLeftovers(2);
  assert.equal(r.sending, 1);
  assert.deepEqual(r.files.sort(), [`/p/${ids[1]}`, `/p/${ids[2]}`]);
  assert.deepEqual(w.items(2).map((i) => i.path), ["a"]);
  w.close();
});

test("file cache follows a folder move", () => {
  const w = openWorkDb(join(tempDir(), "work.db"));
  for (const p of ["A/1", "A/s/2", "AB/3"]) {
    w.putCached(3, [{ path: p, size: 1, mtimeNs: "1", ino: "9", dev: "1", hash: "h", version: 1 }]);
  }
  w.moveCached(3, "A", "Z", true);
  assert.ok(w.cached(3, "Z/1"));
  assert.ok(w.cached(3, "Z/s/2"));
  assert.ok(w.cached(3, "AB/3"), "a sibling with the same prefix stays");
  assert.equal(w.cached(3, "A/1"), undefined);
  assert.ok(w.cachedByInode(3, "1", "9", 1, "1"));
  w.close();
});

test("peek state is kept, invalidated and per job", () => {
  const w = openWorkDb(join(tempDir(), "work.db"));
  w.setPeekState(4, { newestNs: "100", entries: 5, fingerprint: "f" });
  assert.equal(w.peekState(4)?.newestNs, "100");
  assert.equal(w.peekState(5), undefined);
  w.invalidatePeekState(4);
  assert.equal(w.peekState(4), undefined);
  w.close();
});

test("claim() hands out whole packs, oldest first, and stops adding packs at maxItems", () => {
  const w = openWorkDb(join(tempDir(), "work.db"));
  const ids = w.tx(() =>
    w.addItems(
      4,
      "s",
      Array.from({ length: 9 }, (_, i) => ({ kind: "ADD" as const, path: `f${i}` })),
    )
  );
  // Items of one pack need not be consecutive: P1 also holds item 6, between P2's.
  const packOf = ["P1", "P1", "P1", "P1", "P1", "P2", "P1", "P2", "P3"];
  for (const [i, id] of ids.entries()) w.markReady(id, `/p/${packOf[i]}`, 1, null);
  const first = w.claim(4, 111, 1);
  assert.deepEqual(first.map((i) => i.path), ["f0", "f1", "f2", "f3", "f4", "f6"], "all of P1");
  // maxItems 1 still hands out one whole pack (P2), never part of one.
  assert.deepEqual(w.claim(4, 111, 10, 1).map((i) => i.path), ["f5", "f7"]);
  assert.deepEqual(w.claim(4, 111, 10).map((i) => i.path), ["f8"]);
  assert.deepEqual(w.claim(4, 111, 10), []);
  w.close();
});

test("cachedHashes(): by path first, else by device + inode, only at the same size and mtime", () => {
  const w = openWorkDb(join(tempDir(), "work.db"));
  const put = (path: string, ino: string, hash: string) =>
    w.putCached(1, [{ path, size: 5, mtimeNs: "7", ino, dev: "1", hash, version: 1 }]);
  put("a", "10", "ha");
  put("old/b", "11", "hb");
  put("c", "12", "hc");
  w.putCached(2, [{
    path: "d",
    size: 5,
    mtimeNs: "7",
    ino: "13",
    dev: "1",
    hash: "hd",
    version: 1,
  }]);
  const f = (path: string, ino: string, size = 5) => ({ path, size, mtimeNs: "7", ino, dev: "1" });
  const got = w.cachedHashes(1, [
    f("a", "99"), // same path
    f("new/b", "11"), // renamed: same inode
    f("c", "12", 6), // grown: neither
    f("e", "13"), // another job's inode
  ]);
  assert.deepEqual([...got].sort(), [
    ["a", { hash: "ha", inode: false }],
    ["new/b", { hash: "hb", inode: true }],
  ]);
  assert.equal(w.cachedHashes(1, []).size, 0);
  w.close();
});

/** Makes the listings of `db` what they were before walk keys (keyed by path). */
function oldListings(db: DatabaseSync): void {
  db.exec("DROP TABLE local_files");
  db.exec("DROP TABLE cloud_files");
  db.exec(
    `CREATE TABLE local_files (job INTEGER NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,
       mtime_ns TEXT NOT NULL, mode INTEGER NOT NULL, ino TEXT NOT NULL, dev TEXT NOT NULL,
       PRIMARY KEY (job, path)) WITHOUT ROWID`,
  );
  db.exec(
    `CREATE TABLE cloud_files (job INTEGER NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,
       mtime_ns TEXT NOT NULL, mode INTEGER NOT NULL, hash TEXT NOT NULL,
       version INTEGER NOT NULL, PRIMARY KEY (job, path)) WITHOUT ROWID`,
  );
}

test("a work.db with listings from before walk keys gets them made again, and lists in full next", async () => {
  const path = join(tempDir(), "work.db");
  const w = openWorkDb(path);
  oldListings(w.db);
  w.db.exec("INSERT INTO cloud_files VALUES (1, 'a/b', 1, '1', 420, 'h', 7)");
  async function* one() {
    yield [{ path: "a/b", size: 1, mtimeNs: "1", mode: 0o644, hash: "h", version: 7 }];
  }
  w.close();
  const again = openWorkDb(path);
  await again.saveCloud(1, one()); // writes through the new table (wkey generated)
  again.setCloudTag(1, "t");
  again.tx(() =>
    again.putLocal(1, [{ path: "x/y", size: 2, mtimeNs: "3", mode: 0o644, ino: "4", dev: "5" }])
  );
  assert.equal(again.localFile(1, "x/y")?.size, 2, "local_files has its walk key");
  assert.equal(again.cloudTag(1), "t");
  assert.equal(
    (again.db.prepare("SELECT wkey FROM cloud_files WHERE path = 'a/b'").get() as { wkey: string })
      .wkey,
    "a\x01b",
  );
  again.close();
  // An old work.db with a saved listing: the listing is made again.
  const old = openWorkDb(path);
  old.db.exec("DROP TABLE cloud_files");
  old.db.exec(
    `CREATE TABLE cloud_files (job INTEGER NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,
       mtime_ns TEXT NOT NULL, mode INTEGER NOT NULL, hash TEXT NOT NULL,
       version INTEGER NOT NULL, PRIMARY KEY (job, path)) WITHOUT ROWID`,
  );
  old.close();
  const w3 = openWorkDb(path);
  assert.equal(w3.hasSavedCloud(1), false, "the saved listing is not trusted any more");
  assert.equal(w3.cloudTag(1), undefined);
  assert.equal(w3.cloudCount(1), 0);
  w3.close();
});

test("a work.db of the schema before listing tags and walk keys opens, and lists in full next", () => {
  const path = join(tempDir(), "work.db");
  const w = openWorkDb(path);
  // Back to that schema: no cloud_tag, no peeking, listings keyed by path.
  w.db.exec("ALTER TABLE job_state DROP COLUMN cloud_tag");
  w.db.exec("ALTER TABLE runs DROP COLUMN peeking");
  oldListings(w.db);
  w.db.exec(
    `INSERT INTO job_state (job, newest_ns, entries, fingerprint, updated, cloud_saved)
     VALUES (1, '5', 3, 'f', 'now', 1)`,
  );
  w.db.exec("INSERT INTO cloud_files VALUES (1, 'a', 1, '1', 420, 'h', 7)");
  w.close();
  for (let i = 0; i < 2; i++) {
    const again = openWorkDb(path); // twice: the second open finds everything in place
    assert.equal(again.hasSavedCloud(1), false);
    assert.equal(again.cloudTag(1), undefined);
    assert.equal(again.peekState(1)?.newestNs, "5", "the skip state holds");
    again.startRun("s", 1);
    again.markPeeking("s", 1);
    again.endRun("s", 1, true);
    assert.equal(
      (again.db.prepare("SELECT peeking FROM runs WHERE session = 's'").get() as {
        peeking: number;
      }).peeking,
      0,
      "an ended run is not peeking",
    );
    again.close();
  }
});

test("a work.db of schema 1 with ready and sending items hands them out after the upgrade", () => {
  const path = join(tempDir(), "work.db");
  const w = openWorkDb(path);
  const ids = adds(w, 3, "a", "b", "c");
  // Back to schema 1: the pack, its size and the state on the item rows themselves.
  w.db.exec("DELETE FROM packed");
  w.db.exec("DELETE FROM packs");
  const set = w.db.prepare(
    "UPDATE items SET state = ?, pack = ?, pack_bytes = 9, claimed_by = ? WHERE id = ?",
  );
  set.run("ready", "/p/1", null, ids[0]!);
  set.run("sending", "/p/1", 999999999, ids[1]!); // its dequeuer is long gone
  w.db.exec("PRAGMA user_version = 1");
  w.close();
  const again = openWorkDb(path);
  assert.deepEqual(
    again.items(3).map((i) => [i.path, i.state, i.pack]),
    [["a", "ready", "/p/1"], ["b", "ready", "/p/1"], ["c", "planned", null]],
  );
  assert.equal(again.hasReady(3), true);
  const got = again.claim(3, 111, 10);
  assert.deepEqual(got.map((i) => [i.path, i.packBytes]), [["a", 9], ["b", 9]]);
  assert.deepEqual(again.items(3).map((i) => i.state), ["sending", "sending", "planned"]);
  again.close();
  assert.equal(openWorkDb(path).items(3).length, 3, "a second open changes nothing");
});

test("fail() and unclaim(): a pack whose items all failed is gone, an unclaimed one is ready", () => {
  const w = openWorkDb(join(tempDir(), "work.db"));
  const ids = claimedTwoPacks(w, 4);
  assert.equal(w.hasReady(4), false, "everything is claimed");
  w.fail(ids[0]!, "rejected");
  w.fail(ids[1]!, "rejected");
  const packs = () =>
    (w.db.prepare("SELECT pack FROM packs WHERE job = 4").all() as { pack: string }[])
      .map((r) => r.pack);
  assert.deepEqual(packs(), ["/p/2"], "the failed pack's row is gone");
  assert.deepEqual(w.items(4).map((i) => [i.state, i.error]), [
    ["failed", "rejected"],
    ["failed", "rejected"],
    ["sending", null],
  ]);
  w.unclaim([ids[2]!]);
  assert.equal(w.hasReady(4), true);
  assert.deepEqual(w.claim(4, 222, 10).map((i) => i.path), ["c"], "failed items are not sent");
  w.close();
});

test("packCounts() counts ready and claimed packs; an item of an unlisted pack is planned", () => {
  const w = openWorkDb(join(tempDir(), "work.db"));
  const ids = adds(w, 6, "a", "b", "c");
  w.markReady(ids[0]!, "/p/1", 1, null);
  w.markReady(ids[1]!, "/p/2", 1, null);
  assert.deepEqual(w.packCounts(6), { ready: 2, sending: 0 });
  assert.equal(w.claim(6, 111, 1).length, 1);
  assert.deepEqual(w.packCounts(6), { ready: 1, sending: 1 });
  w.db.exec("DELETE FROM packs WHERE pack = '/p/2'");
  assert.deepEqual(w.items(6).map((i) => i.state), ["sending", "planned", "planned"]);
  assert.equal(w.counts(6).ready, 0, "nothing can hand it out: not ready");
  // A claim finds its next pack by an index, not by sorting every pack of the job.
  const plan = w.db.prepare(
    `EXPLAIN QUERY PLAN SELECT pack FROM packs WHERE job = 6 AND stage = 2
     AND claimed_by IS NULL ORDER BY first LIMIT 10`,
  ).all() as { detail: string }[];
  assert.match(plan.map((r) => r.detail).join("\n"), /USING INDEX packs_ready/);
  assert.doesNotMatch(plan.map((r) => r.detail).join("\n"), /TEMP B-TREE/);
  w.close();
});

test("markPackReady() records a pack's items as markPacked() and markReady() do, in one row a pack", () => {
  const dir = tempDir();
  const plan = (w: WorkDb) =>
    w.tx(() =>
      w.addItems(3, "s", [
        { kind: "ADD", path: "a", size: 1, mtimeNs: "11", mode: 0o644 },
        { kind: "UPDATE", path: "u", size: 2, baseVersion: 7, baseHash: "b".repeat(64) },
        { kind: "DELETE", path: "gone" },
        { kind: "UPDATE", path: "v", size: 4, baseVersion: 8, baseHash: "b".repeat(64) },
        { kind: "ADD", path: "z", size: 5 },
      ])
    );
  const header = (size: number, hash: string, base?: number) =>
    ({
      ...(base === undefined ? {} : { base, baseHash: "b".repeat(64) }),
      size,
      mtimeNs: "99",
      mode: 0o600,
      hash,
    }) as never;
  // The same pack recorded item by item (as before) and in one call.
  const one = openWorkDb(join(dir, "one.db"));
  const many = openWorkDb(join(dir, "many.db"));
  const ids = plan(one);
  assert.deepEqual(plan(many), ids);
  one.tx(() => {
    one.markPacked(ids[0]!, "ADD", header(1, "1".repeat(64)), "/p/x", 500, "/s/a");
    one.markPacked(ids[1]!, "ADD", header(2, "2".repeat(64)), "/p/x", 0, null); // fell back
    one.markReady(ids[2]!, "/p/x", 0, null);
    one.markPacked(ids[3]!, "UPDATE", header(4, "4".repeat(64), 8), "/p/x", 0, "/s/v");
  });
  const items = many.items(3, "planned");
  many.markPackReady("/p/x", 500, [
    { item: items[0]!, kind: "ADD", header: header(1, "1".repeat(64)), sig: "/s/a" },
    { item: items[1]!, kind: "ADD", header: header(2, "2".repeat(64)), sig: null },
    { item: items[2]!, kind: "DELETE", sig: null },
    { item: items[3]!, kind: "UPDATE", header: header(4, "4".repeat(64), 8), sig: "/s/v" },
  ]);
  const rows = (w: WorkDb) => w.db.prepare("SELECT * FROM packed ORDER BY id").all();
  const packs = (w: WorkDb) => w.db.prepare("SELECT * FROM packs").all();
  assert.deepEqual(rows(many), rows(one));
  assert.deepEqual(packs(many), packs(one));
  assert.equal(packs(many).length, 1, "one row for the pack, its first item first");
  assert.deepEqual(
    many.items(3).map((i) => [i.path, i.kind, i.state, i.packBytes]),
    [
      ["a", "ADD", "ready", 500],
      ["u", "ADD", "ready", 0],
      ["gone", "DELETE", "ready", 0],
      ["v", "UPDATE", "ready", 0],
      ["z", "ADD", "planned", 0],
    ],
  );
  const delta = many.items(3).find((i) => i.path === "v")!;
  assert.deepEqual([delta.baseVersion, delta.hash, delta.sig], [8, "4".repeat(64), "/s/v"]);
  assert.deepEqual(many.claim(3, 111, 10).map((i) => i.path), ["a", "u", "gone", "v"]);
  one.close();
  many.close();
});
