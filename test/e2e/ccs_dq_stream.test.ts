/**
 * End to end: the dequeuer streams. A pack that becomes ready while another is still being
 * sent goes out at once on a free lane, instead of after the batch it was not part of; and
 * what it applied out of order still folds into the saved cloud listing.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { openWorkDb } from "../../src/ccs/work_queue.ts";
import { type CncopdHandle, startCncopd } from "../helpers/cncopd.ts";
import { tempDir } from "../helpers/tmp.ts";
import { ccsHome, cncop, treeDigest } from "../ccs/e2e_helpers.ts";

let d: CncopdHandle;
before(async () => {
  d = await startCncopd();
});
after(async () => {
  await d.cleanup();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `cond()` holds; fails after 60 s naming `what`. */
async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 60_000;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting until ${what}`);
    await sleep(5);
  }
}

test("a pack ready while another is being sent is sent beside it, not after it", async () => {
  const src = join(tempDir(), "src");
  mkdirSync(join(src, "docs"), { recursive: true });
  // Incompressible, in 64 KiB chunks: hundreds of requests, the slow pack of the two.
  writeFileSync(join(src, "big.bin"), randomBytes(12 * 1024 * 1024));
  for (let i = 0; i < 5; i++) writeFileSync(join(src, "docs", `d${i}.txt`), `doc ${i}\n`);
  const { home, jobId } = await ccsHome(d, src);
  const nq = await cncop(home, ["backupagentnq", String(jobId)]);
  assert.equal(nq.status, 0, nq.stderr);

  // The small files' pack is held back (as if the enqueuer were still writing it) until
  // the dequeuer is sending the big one.
  const work = openWorkDb(join(home.work, "work.db"));
  try {
    const packOf = (path: string) => work.items(jobId).find((i) => i.path === path)!.pack!;
    const big = packOf("big.bin");
    const small = packOf("docs/d0.txt");
    assert.notEqual(big, small);
    const stateOf = (pack: string) =>
      work.items(jobId).find((i) => i.pack === pack)?.state ?? "gone";
    const held = work.db.prepare("SELECT * FROM packs WHERE pack = ?").get(small) as Record<
      string,
      string | number | null
    >;
    work.db.prepare("DELETE FROM packs WHERE pack = ?").run(small);

    const dq = cncop(home, ["backupagentdq", "--chunksize", "64k", String(jobId)]);
    await until(() => stateOf(big) === "sending", "the big pack is being sent");
    work.db.prepare(
      "INSERT INTO packs (job, pack, session, stage, first) VALUES (?, ?, ?, ?, ?)",
    ).run(held.job!, held.pack!, held.session!, held.stage!, held.first!);
    await until(() => stateOf(small) === "gone", "the small pack is applied");
    // The small pack was applied and recorded while the big one was still on its way.
    assert.equal(stateOf(big), "sending");
    const r = await dq;
    assert.equal(r.status, 0, r.stderr);
    assert.equal(stateOf(big), "gone");
    assert.equal(r.stderr, "", "no error, no warning");
  } finally {
    work.close();
  }

  const out = join(tempDir(), "out");
  const restore = await cncop(home, ["cncoprestore", String(jobId), "--to", out]);
  assert.equal(restore.status, 0, restore.stderr);
  assert.deepEqual(treeDigest(out), treeDigest(src));
});
