/**
 * End to end: the saved cloud listing follows the dequeuer's own packs, so a peek asks the
 * network only whether it still holds; a change made by anything else is seen.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, sep } from "node:path";
import { after, before, test } from "node:test";
import { PackBuilder } from "../../src/ccs/pack_writer.ts";
import { type CloudFile, openWorkDb } from "../../src/ccs/work_queue.ts";
import type { HomePaths } from "../../src/core/home.ts";
import { NetworkClient } from "../../src/network/client.ts";
import { type CncopdHandle, startCncopd } from "../helpers/cncopd.ts";
import { addHeader } from "../helpers/packs.ts";
import { tempDir } from "../helpers/tmp.ts";
import { backup, ccsHome, treeDigest, writeFiles } from "../ccs/e2e_helpers.ts";

let d: CncopdHandle;
before(async () => {
  d = await startCncopd();
});
after(async () => {
  await d.cleanup();
});

type Row = CloudFile;

/** The saved listing of work.db and its tag. */
function saved(home: HomePaths, jobId: number): { rows: Row[]; tag: string | undefined } {
  const w = openWorkDb(join(home.work, "work.db"));
  try {
    const rows = w.stmt(
      `SELECT path, size, mtime_ns AS mtimeNs, mode, hash, version FROM cloud_files
       WHERE job = ? ORDER BY path`,
    ).all(jobId) as unknown as Row[];
    return { rows: rows.map((r) => ({ ...r })), tag: w.cloudTag(jobId) };
  } finally {
    w.close();
  }
}

/** The network's whole listing of the job and its tag. */
async function network(token: string, jobId: number): Promise<{ rows: Row[]; tag?: string }> {
  const c = new NetworkClient({ url: d.url, token });
  const rows: Row[] = [];
  let tag: string | undefined;
  for await (const b of c.peekBatches(String(jobId), { onTag: (t) => tag = t })) {
    for (const f of b) {
      rows.push({
        path: f.path,
        size: f.size,
        mtimeNs: f.mtimeNs,
        mode: f.mode,
        hash: f.hash,
        version: f.version,
      });
    }
  }
  c.close();
  return { rows, tag };
}

function nqLog(home: HomePaths): string {
  return readFileSync(join(home.logs, `NQ-${new Date().toISOString().slice(0, 10)}.log`), "utf8");
}

async function run(home: HomePaths, jobId: number, what: string): Promise<void> {
  const r = await backup(home, jobId);
  assert.equal(r.nq.status, 0, `nq (${what}): ${r.nq.stderr}`);
  assert.equal(r.dq.status, 0, `dq (${what}): ${r.dq.stderr}`);
}

const holds = /the saved cloud listing still holds/g;

test("the saved listing follows every kind of change the dequeuer sends, and is asked for by its tag", async () => {
  const src = join(tempDir(), "src");
  writeFiles(src, 60, (i) => join(`d${i % 3}`, `s${i % 2}`, `f${i}.txt`), (i) => `file ${i}\n`);
  writeFileSync(join(src, "big.bin"), Buffer.alloc(1_500_000, 7));
  const { home, jobId, token } = await ccsHome(d, src);
  await run(home, jobId, "first");
  const steps: [string, () => void][] = [
    ["adds and an edit", () => {
      writeFileSync(join(src, "d0", "new.txt"), "new\n");
      writeFileSync(join(src, "d1", "s0", "f1.txt"), "file 1, longer now\n");
      const big = Buffer.alloc(1_500_000, 7);
      big.write("edited", 700_000);
      writeFileSync(join(src, "big.bin"), big);
    }],
    ["a folder renamed, with a file changed and one gone inside", () => {
      writeFileSync(join(src, "d2", "s0", "f2.txt"), "file 2, second draft\n");
      rmSync(join(src, "d2", "s1", "f5.txt"));
      renameSync(join(src, "d2"), join(src, "d2-renamed"));
    }],
    ["a file renamed, a file deleted, a chmod", () => {
      renameSync(join(src, "d0", "s0", "f0.txt"), join(src, "d0", "f0-moved.txt"));
      rmSync(join(src, "d1", "s1", "f7.txt"));
      chmodSync(join(src, "d0", "s1", "f3.txt"), 0o600);
    }],
    ["a folder renamed into a part of its old name", () => {
      mkdirSync(join(src, "d1", "s0", "s0"), { recursive: true });
      writeFileSync(join(src, "d1", "s0", "s0", "x.txt"), "x\n");
      writeFileSync(join(src, "d1", "s0", "s0", "y.txt"), "y\n");
      writeFileSync(join(src, "d1", "s0", "s0", "z.txt"), "z\n");
      renameSync(join(src, "d1", "s0"), join(src, "d1", "s0-old"));
      // d1/s0-old/s0/* and d1/s0-old/f*.txt: one folder move of d1/s0.
    }],
    ["a folder with an emoji in its name renamed", () => {
      mkdirSync(join(src, "d0", "😀"), { recursive: true });
      writeFileSync(join(src, "d0", "😀", "p.txt"), "p\n");
      writeFileSync(join(src, "d0", "😀", "q.txt"), "q\n");
    }],
    ["... and renamed", () => {
      renameSync(join(src, "d0", "😀"), join(src, "d0", "x😀y"));
    }],
    ["a whole folder deleted", () => {
      rmSync(join(src, "d1"), { recursive: true });
    }],
  ];
  let asked = 0;
  for (const [what, change] of steps) {
    change();
    await run(home, jobId, what);
    const mine = saved(home, jobId);
    const theirs = await network(token, jobId);
    assert.deepEqual(mine.rows, theirs.rows, `after ${what}: the saved listing is the network's`);
    assert.deepEqual(
      theirs.rows.map((r) => r.path).sort(),
      [...treeDigest(src).keys()].map((p) => p.split(sep).join("/")).sort(),
      `after ${what}: the network has the source's paths`,
    );
    assert.equal(mine.tag, theirs.tag, `after ${what}: the saved tag is the network's`);
    asked++;
    assert.equal(nqLog(home).match(holds)?.length ?? 0, asked, `after ${what}: a 304, no listing`);
  }
});

test("a pack the dequeuer did not send makes the next peek read the whole listing", async () => {
  const src = join(tempDir(), "src");
  writeFiles(src, 10, (i) => join("docs", `f${i}.txt`), (i) => `file ${i}\n`);
  const { home, jobId, token } = await ccsHome(d, src);
  await run(home, jobId, "first");
  // Another writer adds a file to the job behind the device's back.
  const c = new NetworkClient({ url: d.url, token });
  const body = Buffer.from("not from the dequeuer\n");
  const b = await PackBuilder.create(join(tempDir(), "other.pack"));
  await b.add(addHeader(String(jobId), "docs/other.txt", body), body);
  await c.uploadPack(String(jobId), (await b.finish()).path);
  c.close();

  writeFileSync(join(src, "docs", "f0.txt"), "file 0, edited\n");
  await run(home, jobId, "after the other writer");
  assert.equal(nqLog(home).match(holds)?.length ?? 0, 0, "the saved listing was not trusted");
  // The peek saw the file the source lacks and deleted it from the cloud.
  const theirs = await network(token, jobId);
  assert.ok(!theirs.rows.some((r) => r.path === "docs/other.txt"), "the stray file was deleted");
  assert.deepEqual(saved(home, jobId).rows, theirs.rows);
});
