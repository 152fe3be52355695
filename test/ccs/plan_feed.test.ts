import assert from "node:assert/strict";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { openLog } from "../../src/core/log.ts";
import { packPlanned } from "../../src/ccs/pack.ts";
import { planWalked } from "../../src/ccs/peek.ts";
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
async function packingFed(files: number) {
  const dir = tempDir();
  const root = join(dir, "src");
  const workDir = join(dir, "work");
  mkdirSync(root, { recursive: true });
  mkdirSync(workDir);
  for (let i = 0; i < files; i++) {
    writeFileSync(join(root, `f${i}.txt`), `file ${i}\n`.repeat(i + 1));
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
  const { workDir, work, walked, feed, packing, plan, packed } = await packingFed(1);
  plan(walked);
  await packed(1);
  feed.end(new Error("EIO: the source went away"));
  await assert.rejects(packing, /source went away/);
  assert.deepEqual(
    readdirSync(workDir).filter((f) => !f.startsWith("work.db")),
    [],
    "the pack it was filling is gone",
  );
  assert.deepEqual(work.items(1).map((i) => i.state), ["planned"], "it waits for the next run");
  work.close();
});
