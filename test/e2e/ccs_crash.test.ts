/**
 * End to end: the network going away during an upload, and kill -9 of the enqueuer or the
 * dequeuer at random points. Nothing may be lost: the following run completes and the cloud
 * matches the source.
 */
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type CncopdHandle, startCncopd } from "../helpers/cncopd.ts";
import { tempDir } from "../helpers/tmp.ts";
import { backup, ccsHome, cncop, fast, treeDigest } from "../ccs/e2e_helpers.ts";

let d: CncopdHandle;
before(async () => {
  d = await startCncopd();
});
after(async () => {
  await d.cleanup();
});

function ok(r: { status: number | null; stderr: string }, what: string) {
  assert.equal(r.status, 0, `${what} failed: ${r.stderr}`);
}

async function restoredEquals(home: Parameters<typeof cncop>[0], job: number, src: string) {
  const out = join(tempDir(), "out");
  ok(await cncop(home, ["cncoprestore", String(job), "--to", out]), "restore");
  assert.deepEqual(treeDigest(out), treeDigest(src));
}

test("network down during dq: exit 75, packs kept; the next run completes", async () => {
  const src = join(tempDir(), "src");
  mkdirSync(src);
  for (let i = 0; i < 30; i++) writeFileSync(join(src, `f${i}`), Buffer.alloc(1000 + i, i));
  const { home, jobId } = await ccsHome(d, src);
  ok(await cncop(home, ["backupagentnq", String(jobId)], fast), "nq");
  // However the 30 files are packed, the packs stay until the network applied them.
  const packs = readdirSync(home.work).filter((f) => f.endsWith(".pack")).length;
  assert.ok(packs > 0);
  await d.stop();
  try {
    const dq = await cncop(home, ["backupagentdq", String(jobId)], fast);
    assert.equal(dq.status, 75, dq.stderr);
    assert.equal(readdirSync(home.work).filter((f) => f.endsWith(".pack")).length, packs);
  } finally {
    await d.restart();
  }
  // The restarted server listens on the same port.
  ok(await cncop(home, ["backupagentdq", String(jobId)], fast), "dq after the network is back");
  assert.equal(readdirSync(home.work).filter((f) => f.endsWith(".pack")).length, 0);
  await restoredEquals(home, jobId, src);
});

test("kill -9 of nq or dq at random points in 20 runs: the following run completes", async () => {
  const src = join(tempDir(), "src");
  mkdirSync(join(src, "a"), { recursive: true });
  for (let i = 0; i < 40; i++) writeFileSync(join(src, "a", `f${i}`), `file ${i}\n`.repeat(i * 50));
  const { home, jobId } = await ccsHome(d, src);
  let seed = 7;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  let counter = 1000;
  for (let run = 0; run < 20; run++) {
    // Change the tree: new, edited, deleted and moved files, sometimes a renamed folder.
    const dirs = readdirSync(src);
    const dir = join(src, dirs[rnd(dirs.length)]!);
    writeFileSync(join(dir, `n${counter++}`), `new ${counter}\n`.repeat(rnd(2000)));
    const files = readdirSync(dir);
    if (files.length > 3) {
      writeFileSync(join(dir, files[rnd(files.length)]!), `edit ${run}\n`.repeat(rnd(3000)));
      rmSync(join(dir, files[rnd(files.length)]!), { force: true });
    }
    if (run % 5 === 2) renameSync(dir, join(src, `dir${counter++}`));

    const session = `kill-${run}`;
    const env = { ...fast, CNCOP_JOB_SESSION: session };
    const nq = cncop(home, ["backupagentnq", String(jobId)], env);
    const dq = cncop(home, ["backupagentdq", String(jobId)], env);
    await new Promise((r) => setTimeout(r, 300 + rnd(1500)));
    (run % 2 === 0 ? nq : dq).kill("SIGKILL");
    await Promise.all([nq, dq]);

    const next = await backup(home, jobId, [], fast);
    ok(next.nq, `nq after kill ${run}`);
    ok(next.dq, `dq after kill ${run}`);
    if (run % 5 === 4) await restoredEquals(home, jobId, src);
  }
  await restoredEquals(home, jobId, src);
});
