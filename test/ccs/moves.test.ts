import assert from "node:assert/strict";
import { test } from "node:test";
import {
  type AddCandidate,
  type DeleteCandidate,
  promoteMoves,
  renamedPrefix,
} from "../../src/ccs/moves.ts";

/** A synthetic world: content hash by path, cloud listing as sorted paths. */
function world(cloud: DeleteCandidate[], stillLocal: string[] = []) {
  const all = [...cloud.map((d) => d.path), ...stillLocal].sort();
  const hashes = new Map<string, string>();
  let hashedCalls = 0;
  return {
    hashes,
    get hashedCalls() {
      return hashedCalls;
    },
    options: {
      hashOf: (a: AddCandidate) => {
        hashedCalls++;
        return Promise.resolve(hashes.get(a.path));
      },
      cloudCountUnder: (prefix: string) => all.filter((p) => p.startsWith(prefix + "/")).length,
    },
  };
}

const del = (path: string, hash: string, size = 10, mtimeNs = "1"): DeleteCandidate => ({
  path,
  size,
  mtimeNs,
  hash,
  version: 1,
});
const add = (path: string, size = 10, mtimeNs = "1"): AddCandidate => ({ path, size, mtimeNs });

test("renamedPrefix() finds the top differing folder", () => {
  assert.deepEqual(renamedPrefix("Proposals/x/f.txt", "2026-Proposals/x/f.txt"), [
    "Proposals",
    "2026-Proposals",
  ]);
  assert.deepEqual(renamedPrefix("a/b/c/f", "a/z/c/f"), ["a/b", "a/z"]);
  assert.equal(renamedPrefix("d/a.txt", "d/b.txt"), undefined);
  assert.equal(renamedPrefix("f.txt", "sub/f.txt"), undefined);
});

test("promoteMoves() pairs a renamed file and hashes only size-matched adds", async () => {
  const w = world([del("old.txt", "h1", 5), del("gone.txt", "h2", 7)]);
  w.hashes.set("new.txt", "h1");
  w.hashes.set("other.bin", "hX");
  const plan = await promoteMoves(
    [add("new.txt", 5), add("other.bin", 5), add("big.iso", 999)],
    [del("old.txt", "h1", 5), del("gone.txt", "h2", 7)],
    w.options,
  );
  assert.deepEqual(plan.fileMoves.map((m) => [m.from, m.to]), [["old.txt", "new.txt"]]);
  assert.deepEqual(plan.adds.map((a) => a.path).sort(), ["big.iso", "other.bin"]);
  assert.deepEqual(plan.deletes.map((d) => d.path), ["gone.txt"]);
  assert.equal(w.hashedCalls, 2, "big.iso has no size match and must not be hashed");
});

test("promoteMoves() breaks ties by base name, then mtime", async () => {
  const dels = [del("a/x.txt", "h", 10, "5"), del("b/y.txt", "h", 10, "9"), del("c/z.txt", "h")];
  const w = world(dels);
  for (const p of ["n/y.txt", "n/q.txt"]) w.hashes.set(p, "h");
  const plan = await promoteMoves([add("n/y.txt", 10, "1"), add("n/q.txt", 10, "5")], dels, {
    ...w.options,
    minFolderFiles: 99,
  });
  const got = new Map(plan.fileMoves.map((m) => [m.to, m.from]));
  assert.equal(got.get("n/y.txt"), "b/y.txt");
  assert.equal(got.get("n/q.txt"), "a/x.txt");
});

test("promoteMoves() turns a renamed folder into one folder move with updates", async () => {
  const dels: DeleteCandidate[] = [];
  const adds: AddCandidate[] = [];
  for (let i = 0; i < 50; i++) {
    dels.push(del(`Proposals/s${i % 3}/f${i}.doc`, `h${i}`));
    adds.push(add(`2026-Proposals/s${i % 3}/f${i}.doc`));
  }
  dels.push(del("Proposals/removed.doc", "hr", 3));
  const w = world(dels, ["Other/keep.txt"]);
  for (let i = 0; i < 50; i++) w.hashes.set(`2026-Proposals/s${i % 3}/f${i}.doc`, `h${i}`);
  w.hashes.set("2026-Proposals/s0/f0.doc", "changed");
  const plan = await promoteMoves(adds, dels, w.options);
  assert.deepEqual(plan.folderMoves, [{ from: "Proposals", to: "2026-Proposals", files: 51 }]);
  assert.equal(plan.fileMoves.length, 0);
  assert.deepEqual(plan.updates.map((u) => [u.add.path, u.base.path]), [[
    "2026-Proposals/s0/f0.doc",
    "Proposals/s0/f0.doc",
  ]]);
  assert.deepEqual(plan.movedDeletes.map((d) => d.path), ["2026-Proposals/removed.doc"]);
  assert.equal(plan.adds.length, 0);
  assert.equal(plan.deletes.length, 0);
});

test("promoteMoves() keeps file moves when part of the old folder still exists", async () => {
  const dels = [del("A/1", "h1"), del("A/2", "h2")];
  const w = world(dels, ["A/still-here"]);
  w.hashes.set("B/1", "h1");
  w.hashes.set("B/2", "h2");
  const plan = await promoteMoves([add("B/1"), add("B/2")], dels, w.options);
  assert.equal(plan.folderMoves.length, 0);
  assert.equal(plan.fileMoves.length, 2);
});

test("promoteMoves() rewrites a file moved out of a moved folder", async () => {
  const dels = [del("A/1", "h1"), del("A/2", "h2"), del("A/3", "h3"), del("A/x", "hx")];
  const w = world(dels);
  for (const [p, h] of [["B/1", "h1"], ["B/2", "h2"], ["B/3", "h3"], ["C/y", "hx"]]) {
    w.hashes.set(p!, h!);
  }
  const plan = await promoteMoves([add("B/1"), add("B/2"), add("B/3"), add("C/y")], dels, {
    ...w.options,
  });
  assert.deepEqual(plan.folderMoves.map((f) => [f.from, f.to]), [["A", "B"]]);
  assert.deepEqual(plan.fileMoves.map((m) => [m.from, m.to]), [["B/x", "C/y"]]);
});

test("promoteMoves() handles 100k adds x 100k deletes without quadratic pairing", async () => {
  const n = 100_000;
  const dels: DeleteCandidate[] = [];
  const adds: AddCandidate[] = [];
  const hashes = new Map<string, string>();
  for (let i = 0; i < n; i++) {
    // Many same sizes (and 1000 identical empty files) to stress the buckets.
    const size = i < 1000 ? 0 : i % 5000;
    const h = i < 1000 ? "empty" : `h${i}`;
    dels.push({ path: `old/d${i % 100}/f${i}`, size, mtimeNs: "1", hash: h, version: i + 1 });
    const p = i % 2 === 0 ? `new/d${i % 100}/f${i}` : `elsewhere/g${i}`;
    adds.push({ path: p, size, mtimeNs: "1" });
    hashes.set(p, i % 10 === 9 ? `changed${i}` : h);
  }
  const plan = await promoteMoves(adds, dels, {
    hashOf: (a) => Promise.resolve(hashes.get(a.path)),
    cloudCountUnder: () => -1, // old/ still has other files: no folder moves
  });
  assert.equal(plan.folderMoves.length, 0);
  const moved = plan.fileMoves.length;
  assert.ok(moved >= 89_000 && moved <= 91_000, `moves: ${moved}`);
  assert.equal(plan.adds.length + moved, n);
  assert.equal(plan.deletes.length + moved, n);
  const seen = new Set(plan.fileMoves.map((m) => m.from));
  assert.equal(seen.size, moved, "a delete is paired at most once");
  for (const m of plan.fileMoves.slice(0, 1000)) {
    assert.equal(hashes.get(m.to), m.del.hash);
  }
});
