import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { addCandidates, diffCounts, goneFiles, planContent } from "../../src/ccs/peek.ts";
import { openWorkDb } from "../../src/ccs/work_queue.ts";
import { tempDir } from "../helpers/tmp.ts";

const local = (path: string, size: number, mtimeNs = "1") => ({
  path,
  size,
  mtimeNs,
  mode: 0o644,
  ino: "1",
  dev: "1",
});
const cloud = (path: string, size: number, mtimeNs = "1", version = 1) => ({
  path,
  size,
  mtimeNs,
  mode: 0o644,
  hash: `h-${path}`,
  version,
});

async function* rows<T>(xs: T[]): AsyncIterable<T> {
  for (const x of xs) yield x;
}

test("diffCounts(), goneFiles(), addCandidates() and planContent() split the listings", async () => {
  const w = openWorkDb(join(tempDir(), "work.db"));
  w.tx(() =>
    w.putLocal(1, [
      local("same", 5),
      local("touched", 5, "2"),
      local("grown", 9),
      local("new-a", 7),
      local("new-b", 8),
    ])
  );
  await w.saveCloud(
    1,
    rows([cloud("same", 5), cloud("touched", 5), cloud("grown", 5, "1", 4), cloud("old", 7)]),
  );
  assert.deepEqual(diffCounts(w, 1), { adds: 2, changed: 2, deletes: 1, unchanged: 1 });
  assert.deepEqual(goneFiles(w, 1).map((g) => g.path), ["old"]);
  assert.deepEqual(addCandidates(w, 1, [7]).map((a) => a.path), ["new-a"]);

  w.db.exec("BEGIN");
  const planned = planContent(w, 1, "s", ["new-a"]);
  w.db.exec("COMMIT");
  assert.deepEqual(planned, { adds: 1, updates: 2 });
  const items = w.items(1);
  assert.deepEqual(items.map((i) => [i.kind, i.path]), [
    ["UPDATE", "grown"],
    ["UPDATE", "touched"],
    ["ADD", "new-b"],
  ]);
  assert.equal(items[0]!.baseVersion, 4);
  assert.equal(items[0]!.baseHash, "h-grown");
  w.close();
});
