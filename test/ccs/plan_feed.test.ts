import assert from "node:assert/strict";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { openLog } from "../../src/core/log.ts";
import { packPlanned } from "../../src/ccs/pack.ts";
import { planWalked, scanSource } from "../../src/ccs/peek.ts";
import { PlanFeed } from "../../src/ccs/plan_feed.ts";
import { openWorkDb } from "../../src/ccs/work_queue.ts";
import { native, type WalkEntry } from "../../src/native/mod.ts";
import { testPackContext } from "../helpers/packs.ts";
import { tempDir } from "../helpers/tmp.ts";

test("PlanFeed: a wait ends with the next batch or the end, and fails with the planner", async () => {
  const feed = new PlanFeed();
  let woke = 0;
  const w = feed.wait().then(() => woke++);
  await new Promise((r) => setImmediate(r));
  assert.equal(woke, 0, "nothing planned yet: still waiting");
  feed.add(3);
  await w;
  assert.equal(feed.planned, 3);
  assert.equal(feed.ended, false);
  const last = feed.wait();
  feed.end();
  await last;
  await feed.wait(); // over: no more waiting
  const failed = new PlanFeed();
  const waiting = failed.wait();
  failed.end(new Error("walk failed"));
  await assert.rejects(waiting, /walk failed/);
  await assert.rejects(failed.wait(), /walk failed/);
});

/**
 * A tree of `files` small files, its walk (files only, in path order), and the pack phase
 * started on an empty work.db with a feed: items are planned by the test while it runs.
 */
async function packingFed(files: number, size?: number) {
  const dir = tempDir();
  const root = join(dir, "src");
  const workDir = join(dir, "work");
  mkdirSync(root, { recursive: true });
  mkdirSync(workDir);
  for (let i = 0; i < files; i++) {
    const body = size === undefined ? `file ${i}\n`.repeat(i + 1) : Buffer.alloc(size, i);
    writeFileSync(join(root, `f${String(i).padStart(3, "0")}.txt`), body);
  }
  const work = openWorkDb(join(workDir, "work.db"));
  const walked: WalkEntry[] = [];
  for await (const batch of native.walk(root, {})) {
    walked.push(...batch.filter((e) => e.kind === "file"));
  }
  walked.sort((a, b) => (a.path < b.path ? -1 : 1));
  const feed = new PlanFeed();
  const log = openLog({ dir: join(dir, "logs"), prefix: "NQ", style: "daily", program: "test" });
  const seen = { done: 0 };
  const packing = packPlanned(
    testPackContext(work, workDir, root, log, { onItem: () => seen.done++, feed }),
  );
  packing.catch(() => {}).finally(() => log.close());
  /** Plans `batch` as a walk would (in one transaction) and tells the feed. */
  const plan = (batch: WalkEntry[]) => work.tx(() => feed.add(planWalked(work, 1, "s", batch)));
  /** Resolves once the packer has gone through `n` items. */
  const packed = async (n: number) => {
    while (seen.done < n) await new Promise((r) => setTimeout(r, 5));
  };
  return { workDir, work, walked, feed, packing, plan, packed };
}

test("the pack phase packs what is planned while it runs, and ends only with the planner", async () => {
  const { work, walked, feed, packing, plan, packed } = await packingFed(30);
  assert.equal(walked.length, 30);
  let ended = false;
  void packing.then(() => ended = true);
  // Three batches, as a walk would plan them, each once the packer has caught up.
  for (let b = 0; b < 3; b++) {
    plan(walked.slice(b * 10, b * 10 + 10));
    await packed(b * 10 + 10);
    assert.equal(ended, false, "the packer waits for the planner's end");
  }
  feed.end();
  const s = await packing;
  assert.equal(s.adds, 30);
  assert.equal(work.items(1, "ready").length, 30);
  assert.deepEqual(
    work.items(1).map((i) => [i.path, i.size, i.mtimeNs]),
    walked.map((e) => [e.path, e.size, String(e.mtimeNs)]),
    "planned as the walk listed them, in its order",
  );
  work.close();
});

test("the pack phase stops when planning fails, and leaves no half-written pack", async () => {
  // 20 MB of content: the failure comes while the packer is busy reading, not waiting.
  const { workDir, work, walked, feed, packing, plan, packed } = await packingFed(22, 900_000);
  plan(walked);
  await packed(1);
  feed.end(new Error("EIO: the source went away"));
  await assert.rejects(packing, /source went away/);
  const ready = new Set(work.items(1, "ready").map((i) => i.pack!));
  assert.deepEqual(
    readdirSync(workDir).filter((f) => !f.startsWith("work.db")).map((f) => join(workDir, f)),
    [...ready],
    "only finished packs are left, the one it was filling is gone",
  );
  assert.ok(ready.size <= 1, "at most the first 16 MB were finished");
  assert.ok(work.items(1, "planned").length > 0, "the rest waits for the next run");
  work.close();
});

test("scanSource() gives the hook one file for two walked names that make one path", async () => {
  const root = tempDir();
  const w = openWorkDb(join(tempDir(), "work.db"));
  const log = { info() {}, warn() {}, error() {}, debug() {}, raw() {}, close() {} } as never;
  const entry = (path: string, size: number): WalkEntry => ({
    path,
    kind: "file",
    size,
    mtimeNs: 1n,
    ctimeNs: 1n,
    ino: BigInt(size),
    dev: 1n,
    mode: 0o100644,
  });
  const seen: [string, number][] = [];
  const hook = (files: WalkEntry[]) =>
    seen.push(...files.map((f): [string, number] => [f.path, f.size]));
  // In one batch the row keeps the last, and so does the hook.
  await scanSource(
    w,
    1,
    root,
    {},
    log,
    true,
    [[entry("a", 1), entry("b", 2), entry("b", 3)]],
    hook,
  );
  assert.deepEqual(seen, [["a", 1], ["b", 3]]);
  // Across two batches the first was planned already: the second is not planned again.
  seen.length = 0;
  await scanSource(
    w,
    2,
    root,
    {},
    log,
    true,
    [[entry("c", 4)], [entry("c", 5), entry("d", 6)]],
    hook,
  );
  assert.deepEqual(seen, [["c", 4], ["d", 6]]);
  w.close();
});
