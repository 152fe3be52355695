import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import {
  chmodSync,
  mkdirSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import {
  addCandidates,
  diffCounts,
  goneFiles,
  planContent,
  planSmall,
  quickScan,
  scanSource,
  smallDiff,
} from "../../src/ccs/peek.ts";
import { planPrune } from "../../src/ccs/prune.ts";
import { native, type WalkEntry } from "../../src/native/mod.ts";
import { byteOrderLess, openWorkDb } from "../../src/ccs/work_queue.ts";
import { Catalog } from "../../src/network/catalog.ts";
import { versionJson } from "../../src/network/routes.ts";
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

// In batches of two, as the network's listing arrives in chunks.
async function* rows<T>(xs: T[]): AsyncIterable<T[]> {
  for (let i = 0; i < xs.length; i += 2) yield xs.slice(i, i + 2);
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
    rows([cloud("grown", 5, "1", 4), cloud("old", 7), cloud("same", 5), cloud("touched", 5)]),
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

test("smallDiff() + planSmall() plan exactly what the SQL path plans, and give way when large", async () => {
  const w = openWorkDb(join(tempDir(), "work.db"));
  w.tx(() =>
    w.putLocal(1, [
      local("same", 5),
      local("touched", 5, "2"),
      local("grown", 9),
      { ...local("chmod", 5), mode: 0o700 },
      local("new-a", 7),
      local("new-b", 8),
    ])
  );
  w.tx(() => w.putLocal(2, [local("other-job", 1)]));
  await w.saveCloud(
    1,
    rows([
      cloud("chmod", 5),
      cloud("grown", 5, "1", 4),
      cloud("old", 7),
      cloud("same", 5),
      cloud("touched", 5),
    ]),
  );
  const small = smallDiff(w, 1)!;
  assert.deepEqual(small.counts, diffCounts(w, 1));
  assert.deepEqual(small.adds.map((a) => a.path), ["new-a", "new-b"]);
  assert.equal(smallDiff(w, 1, {}, 4), undefined, "5 differences, limit 4");
  assert.ok(smallDiff(w, 1, {}, 5));
  assert.deepEqual(smallDiff(w, 1, { local: 6, cloud: 5 })?.counts, small.counts);
  const plan = (f: () => unknown) => {
    w.db.exec("BEGIN");
    f();
    const items = w.items(1).map((i) => ({ ...i, id: 0, created: "" }));
    w.db.exec("ROLLBACK");
    return items;
  };
  const viaSql = plan(() => planContent(w, 1, "s", ["new-a"]));
  const viaMemory = plan(() => planSmall(w, 1, "s", small, ["new-a"]));
  assert.equal(viaSql.length, 4);
  assert.deepEqual(viaMemory, viaSql);
  w.close();
});

test("a file whose permission bits alone changed is an UPDATE (chmod keeps size and mtime)", async () => {
  const w = openWorkDb(join(tempDir(), "work.db"));
  w.tx(() => w.putLocal(1, [{ ...local("script.sh", 5), mode: 0o755 }, local("same", 5)]));
  await w.saveCloud(1, rows([cloud("same", 5), cloud("script.sh", 5, "1", 3)]));
  assert.deepEqual(diffCounts(w, 1), { adds: 0, changed: 1, deletes: 0, unchanged: 1 });
  w.db.exec("BEGIN");
  assert.deepEqual(planContent(w, 1, "s", []), { adds: 0, updates: 1 });
  w.db.exec("COMMIT");
  const [u] = w.items(1);
  assert.equal(u!.kind, "UPDATE");
  assert.equal(u!.mode, 0o755);
  assert.equal(u!.baseVersion, 3);
  w.close();
});

test("quickScan(): a chmod changes the mode digest; a newer entry stops the walk early", async () => {
  const root = tempDir();
  mkdirSync(join(root, "a"));
  writeFileSync(join(root, "a", "x"), "x");
  writeFileSync(join(root, "y"), "y");
  const before = await quickScan(root, {});
  assert.equal(before.files, 2);
  assert.equal((await quickScan(root, {})).modes, before.modes, "stable");
  chmodSync(join(root, "a", "x"), 0o700);
  const after = await quickScan(root, {});
  assert.notEqual(after.modes, before.modes);
  assert.equal(after.newestNs, before.newestNs, "a chmod leaves the mtimes alone");
  assert.equal(after.stopped, undefined);
  const early = await quickScan(root, {}, before.newestNs - 1n);
  assert.equal(early.stopped, true);
  await early.end();
});

test("quickScan(): the peek goes on with the scan's walk, and gets every entry once", async () => {
  const root = tempDir();
  for (let d = 0; d < 30; d++) {
    mkdirSync(join(root, `d${d}`));
    for (let f = 0; f < 40; f++) writeFileSync(join(root, `d${d}`, `f${f}`), `${d}.${f}`);
  }
  const small = { batchSize: 100 }; // many batches
  const paths = async (walk: AsyncIterable<{ path: string }[]>) => {
    const out: string[] = [];
    for await (const b of walk) for (const e of b) out.push(e.path);
    return out;
  };
  const fresh = await paths(native.walk(root, small));
  assert.equal(fresh.length, 30 * 41);
  // Stopped at once (everything is newer than 0), after the first batch, mid-walk.
  const stopped = await quickScan(root, small, 0n);
  assert.equal(stopped.stopped, true);
  assert.deepEqual(await paths(stopped.walk!), fresh);
  // One file in the middle of the walk is newer than everything else.
  const rootNs = statSync(root, { bigint: true }).mtimeNs;
  utimesSync(join(root, "d15", "f0"), new Date(), new Date(Date.now() + 3600_000));
  const late = await quickScan(root, small, rootNs + 60_000_000_000n);
  assert.equal(late.stopped, true);
  assert.ok(late.entries > 0 && late.entries < fresh.length, `stopped after ${late.entries}`);
  assert.deepEqual(await paths(late.walk!), fresh);
  // Not stopped: the whole walk was kept.
  const whole = await quickScan(root, small);
  assert.deepEqual(await paths(whole.walk!), fresh);
  // Too many entries to keep: no walk to go on with.
  const many = await quickScan(root, small, undefined, 100);
  assert.equal(many.walk, undefined);
  assert.equal(many.files, 30 * 40);
  const manyStopped = await quickScan(root, small, 0n, 100);
  assert.equal(manyStopped.stopped, true);
});

test("saveCloud() keeps unchanged rows, updates changed ones, drops unlisted ones", async () => {
  const w = openWorkDb(join(tempDir(), "work.db"));
  const saved = () =>
    w.db.prepare("SELECT path, size, version FROM cloud_files WHERE job = 1 ORDER BY path")
      .all()
      .map((r) => `${r.path}:${r.size}:${r.version}`);
  await w.saveCloud(1, rows([cloud("a", 1), cloud("b", 1), cloud("c/x", 1), cloud("d", 1)]));
  await w.saveCloud(2, rows([cloud("a", 9)]));
  assert.equal(w.hasSavedCloud(1), true);
  assert.equal(
    await w.saveCloud(
      1,
      rows([cloud("a", 1), cloud("b", 2, "1", 7), cloud("bb", 1), cloud("e", 1)]),
    ),
    4,
  );
  assert.deepEqual(saved(), ["a:1:1", "b:2:7", "bb:1:1", "e:1:1"]);
  assert.equal(w.cloudCount(2), 1, "another job's rows stay");
  await w.saveCloud(1, rows([]));
  assert.deepEqual(saved(), []);
  await assert.rejects(
    w.saveCloud(1, rows([cloud("b", 1), cloud("a", 1)])),
    /not sorted by path/,
  );
  assert.equal(w.hasSavedCloud(1), false, "an interrupted listing is not reused");
  assert.equal(byteOrderLess("a/b", "a.b"), false, "byte order: '.' < '/'");
  assert.equal(byteOrderLess("\uffff", "\u{10000}"), true, "U+FFFF before U+10000 in UTF-8");
  // Against UTF-8 bytes, on strings from a small alphabet (so prefixes are shared).
  const alphabet = ["a", "b", "/", ".", "\x01", "é", "\ue000", "\uffff", "\u{10000}", "😀"];
  let seed = 7;
  const pick = () => alphabet[(seed = (seed * 1103515245 + 12345) % 2147483648) % alphabet.length]!;
  const word = () => Array.from({ length: 1 + (seed % 5) }, pick).join("");
  for (let i = 0; i < 3000; i++) {
    const [x, y] = [word(), word()];
    assert.equal(
      byteOrderLess(x, y),
      Buffer.compare(Buffer.from(x), Buffer.from(y)) < 0,
      `${x} ${y}`,
    );
  }
  w.close();
});

test("the network's listing built by SQLite parses to the same files as row-by-row JSON", () => {
  const cat = new Catalog(join(tempDir(), "catalog.db"));
  const dev = cat.addDevice("d", "h");
  const job = cat.ensureJob(dev, "1");
  const paths = ["a", 'b"q', "c\\d", "e\nf", "g\u0001h", "ü/€", "𝄞 clef", "z/ä b"];
  cat.tx(() => {
    for (const [i, p] of paths.entries()) {
      cat.putVersion(job.id, {
        path: p,
        size: i * 1000,
        mtimeNs: `${i}123456789`,
        mode: 0o644,
        hash: `h${i}`,
      }, 1000 + i);
    }
  });
  const text = [...cat.treeNdjson(job.id, { page: 3 })].map((p) => p.text).join("");
  const lines = text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
  assert.deepEqual(lines, [...cat.tree(job.id)].map((v) => versionJson(v)));
  assert.equal(lines.length, paths.length);
  cat.close();
});

test("goneFiles() can stop at the collar; planPrune() counts the rest from the total", async () => {
  const w = openWorkDb(join(tempDir(), "work.db"));
  w.tx(() => w.putLocal(1, [local("keep", 1)]));
  const names = Array.from({ length: 10 }, (_, i) => `gone${i}`);
  await w.saveCloud(1, rows([...names.map((n) => cloud(n, 1)), cloud("keep", 1)]));
  const counts = diffCounts(w, 1);
  assert.equal(counts.deletes, 10);
  const first = goneFiles(w, 1, 3);
  assert.deepEqual(first.map((g) => g.path), ["gone0", "gone1", "gone2"]);
  const health = { rootExists: true, localFiles: 1, cloudFiles: 11, walkErrors: 0 };
  const p = planPrune(first, health, { collar: 3, total: counts.deletes });
  assert.deepEqual([p.now.length, p.pending], [3, 7]);
  assert.equal(planPrune([], health, { skipDeletes: true, total: 10 }).pending, 10);
  w.close();
});

test("scanSource() updates the saved listing range by range: only what changed is written", async () => {
  const root = tempDir();
  const lines: string[] = [];
  const log = {
    path: "",
    debugPath: undefined,
    info: (m: string) => lines.push(m),
    warn: (m: string) => lines.push(m),
    error: (m: string) => lines.push(m),
    debug: () => {},
    raw: () => {},
    close: () => {},
  };
  const put = (p: string, body = p) => {
    mkdirSync(join(root, p, ".."), { recursive: true });
    writeFileSync(join(root, p), body);
  };
  // Names that sort differently by whole path than component by component.
  for (const p of ["a", "a-b", "a.b", "a b", "ab/x", "a0", "é/ü.txt", "z/😀/f", "z/😀f"]) {
    put(p.includes("/") || p === "a0" ? p : `${p}/f`);
  }
  for (let d = 0; d < 20; d++) for (let f = 0; f < 30; f++) put(`dir${d}/s/f${f}.txt`);
  const w = openWorkDb(join(tempDir(), "work.db"));
  w.db.exec("CREATE TEMP TABLE writes (n INTEGER)");
  w.db.exec("INSERT INTO temp.writes VALUES (0)");
  w.db.exec(
    `CREATE TEMP TRIGGER count_writes AFTER INSERT ON main.local_files
     BEGIN UPDATE temp.writes SET n = n + 1; END`,
  );
  // What the scan wrote, which its `written` hook saw too (inside the write's transaction).
  const hooked: string[] = [];
  const writes = (byScan = true) => {
    const n = (w.db.prepare("SELECT n FROM temp.writes").get() as { n: number }).n;
    w.db.exec("UPDATE temp.writes SET n = 0");
    if (byScan) assert.equal(hooked.length, n, "the hook is given each file written");
    hooked.length = 0;
    return n;
  };
  const saved = () =>
    (w.db.prepare(
      "SELECT path, size, mtime_ns AS m, mode FROM local_files WHERE job = 1 ORDER BY path",
    ).all() as { path: string; size: number; m: string; mode: number }[]).map((r) =>
      `${r.path}:${r.size}:${r.m}:${r.mode.toString(8)}`
    );
  const truth = async () => {
    const out: string[] = [];
    for await (const b of native.walk(root, {})) {
      for (const e of b) {
        if (e.kind === "file") {
          out.push(`${e.path}:${e.size}:${e.mtimeNs}:${(e.mode & 0o7777).toString(8)}`);
        }
      }
    }
    return out.sort((x, y) => (byteOrderLess(x, y) ? -1 : 1));
  };
  const scan = () =>
    scanSource(w, 1, root, { batchSize: 64 }, log, true, undefined, (files) => {
      assert.ok(w.db.isTransaction);
      hooked.push(...files.map((f) => f.path));
    });
  const other = { path: "other", size: 1, mtimeNs: "1", mode: 0o644, ino: "1", dev: "1" };
  w.tx(() => w.putLocal(2, [other])); // another job's row stays
  writes(false);

  const first = await scan();
  assert.deepEqual(saved(), await truth());
  assert.equal(writes(), 609, "the first scan writes every file");
  assert.equal(first.listed, w.localCount(1));
  await scan();
  assert.equal(writes(), 0, "an unchanged tree writes nothing");

  // A folder renamed, files deleted, added, grown, a chmod.
  renameSync(join(root, "dir3"), join(root, "dir3-renamed"));
  rmSync(join(root, "a.b"), { recursive: true });
  rmSync(join(root, "dir7", "s", "f0.txt"));
  put("dir9/s/new.txt");
  put("dir1/s/f1.txt", "longer content");
  chmodSync(join(root, "dir2", "s", "f2.txt"), 0o600);
  await scan();
  assert.deepEqual(saved(), await truth());
  assert.equal(writes(), 30 + 1 + 1 + 1, "the renamed folder's files and three changed files");

  // Names holding the key's own control bytes: out of the walk's order, written whole.
  put("c\x01d/x");
  put("c\x02/y");
  put("c/z");
  await scan();
  assert.deepEqual(saved(), await truth());
  assert.ok(writes() >= 3);
  await scan();
  assert.deepEqual(saved(), await truth());
  assert.equal(w.localFile(1, "c\x01d/x")?.size, 5);
  // A walk out of its order (here: batches reversed) is still saved exactly.
  rmSync(join(root, "dir5"), { recursive: true });
  const batches: WalkEntry[][] = [];
  for await (const b of native.walk(root, { batchSize: 64 })) batches.push(b);
  const reversed = await scanSource(w, 1, root, {}, log, true, batches.reverse());
  assert.deepEqual(saved(), await truth());
  assert.equal(reversed.listed, undefined, "out of order: not known without counting");
  assert.equal(w.localCount(2), 1);
  w.close();
});
