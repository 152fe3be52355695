import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { foldApplied, foldChained } from "../../src/ccs/cloud_fold.ts";
import { openWorkDb, type WorkItem } from "../../src/ccs/work_queue.ts";
import type { PackResult } from "../../src/network/client.ts";
import { tempDir } from "../helpers/tmp.ts";

function item(kind: WorkItem["kind"], path: string, extra: Partial<WorkItem> = {}): WorkItem {
  return {
    id: 0,
    job: 1,
    session: "s",
    kind,
    stage: 2,
    state: "sending",
    path,
    newPath: null,
    folder: false,
    size: 3,
    mtimeNs: "9",
    mode: 0o644,
    ino: null,
    dev: null,
    hash: `h-${path}`,
    baseVersion: null,
    baseHash: null,
    pack: "p",
    packBytes: 0,
    sig: null,
    claimedBy: null,
    error: null,
    ...extra,
  };
}

/** A work.db whose saved listing of job 1 is d/a, d/b and keep, at tag t0. */
async function savedAtT0() {
  const w = openWorkDb(join(tempDir(), "work.db"));
  async function* rows() {
    yield ["d/a", "d/b", "keep"].map((path, i) => ({
      path,
      size: 1,
      mtimeNs: "1",
      mode: 0o644,
      hash: `old-${path}`,
      version: i + 1,
    }));
  }
  await w.saveCloud(1, rows());
  w.setCloudTag(1, "t0");
  return w;
}

const listing = (w: ReturnType<typeof openWorkDb>) =>
  (w.db.prepare("SELECT path, version FROM cloud_files WHERE job = 1 ORDER BY path").all() as {
    path: string;
    version: number;
  }[]).map((r) => `${r.path}#${r.version}`);

test("foldApplied() folds packs in the order their tags chain, whatever order they come in", async () => {
  const w = await savedAtT0();
  const first: PackResult = {
    kind: "add",
    path: "new",
    version: 10,
    changed: 2,
    entries: [
      { kind: "add", path: "new", version: 10, changed: 1 },
      { kind: "delete", path: "keep", changed: 1 },
    ],
    listing: { before: "t0", after: "t1" },
  };
  const second: PackResult = {
    kind: "move",
    path: "d",
    newPath: "e",
    changed: 2,
    entries: [{ kind: "move", path: "d", newPath: "e", versions: [11, 12], changed: 2 }],
    listing: { before: "t1", after: "t2" },
  };
  const n = w.tx(() =>
    foldApplied(w, 1, [
      { result: second, items: [item("MOVE", "d", { newPath: "e", folder: true })] },
      { result: first, items: [item("ADD", "new"), item("DELETE", "keep")] },
    ])
  );
  assert.equal(n, 2);
  assert.deepEqual(listing(w), ["e/a#11", "e/b#12", "new#10"]);
  assert.equal(w.cloudTag(1), "t2");
  w.close();
});

test("foldChained() keeps a pack that answered before the one applied ahead of it, and the tag", async () => {
  const w = await savedAtT0();
  /** An applied pack of one add at `path`, made on the listing `before`. */
  const addPack = (path: string, version: number, before: string, after: string) => ({
    result: {
      kind: "add",
      path,
      version,
      changed: 1,
      entries: [{ kind: "add", path, version, changed: 1 }],
      listing: { before, after },
    } as PackResult,
    items: [item("ADD", path)],
  });
  const early = addPack("late", 21, "t1", "t2");
  const ahead = addPack("first", 20, "t0", "t1");
  // The answer of the pack applied second comes first: it waits, nothing is forgotten.
  assert.deepEqual(w.tx(() => foldChained(w, 1, [early])), [early]);
  assert.equal(w.cloudTag(1), "t0");
  assert.deepEqual(listing(w), ["d/a#1", "d/b#2", "keep#3"]);
  // Then the one ahead of it: both fold, in the network's order.
  assert.deepEqual(w.tx(() => foldChained(w, 1, [early, ahead])), []);
  assert.equal(w.cloudTag(1), "t2");
  assert.deepEqual(listing(w), ["d/a#1", "d/b#2", "first#20", "keep#3", "late#21"]);
  w.close();
});

test("foldApplied() leaves the listing as it was and forgets the tag when a pack does not fit", async () => {
  const w = await savedAtT0();
  const before = listing(w);
  const misfit: PackResult = {
    kind: "add",
    path: "new",
    version: 10,
    changed: 100,
    entries: [
      { kind: "add", path: "new", version: 10, changed: 1 },
      // The network moved 99 files; the saved listing has 2 under d/.
      { kind: "move", path: "d", newPath: "e", versions: [11, 109], changed: 99 },
    ],
    listing: { before: "t0", after: "t1" },
  };
  const n = w.tx(() =>
    foldApplied(w, 1, [{
      result: misfit,
      items: [item("ADD", "new"), item("MOVE", "d", { newPath: "e", folder: true })],
    }])
  );
  assert.equal(n, 0);
  assert.deepEqual(listing(w), before, "the add before the misfit was undone too");
  assert.equal(w.cloudTag(1), undefined);
  // A pack applied on another tag is not folded either.
  w.setCloudTag(1, "t5");
  w.tx(() =>
    foldApplied(w, 1, [{
      result: { ...misfit, listing: { before: "t4", after: "t6" } },
      items: [],
    }])
  );
  assert.equal(w.cloudTag(1), undefined);
  w.close();
});

test("foldApplied(): a move or delete in a pack sees the adds before it", async () => {
  const w = await savedAtT0();
  const pack: PackResult = {
    kind: "add",
    path: "x",
    version: 10,
    changed: 3,
    entries: [
      { kind: "add", path: "x", version: 10, changed: 1 },
      { kind: "add", path: "d/c", version: 11, changed: 1 },
      { kind: "delete", path: "x", changed: 1 },
      { kind: "delete", path: "d", changed: 3 },
    ],
    listing: { before: "t0", after: "t1" },
  };
  const items = [
    item("ADD", "x"),
    item("ADD", "d/c"),
    item("DELETE", "x"),
    item("DELETE", "d", { folder: true }),
  ];
  assert.equal(w.tx(() => foldApplied(w, 1, [{ result: pack, items }])), 1);
  assert.equal(w.cloudTag(1), "t1");
  assert.deepEqual(listing(w), ["keep#3"]);
  w.close();
});
