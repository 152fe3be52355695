/**
 * End to end: cloud deletes under the delete collar (the default, 1500), and no deletes for
 * a missing source. At the size: 2,000 files deleted.
 */
import assert from "node:assert/strict";
import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { listReports } from "../../src/core/spool.ts";
import type { HomePaths } from "../../src/core/home.ts";
import { NetworkClient } from "../../src/network/client.ts";
import { type CncopdHandle, startCncopd } from "../helpers/cncopd.ts";
import { tempDir } from "../helpers/tmp.ts";
import { backup, ccsHome, writeFiles } from "../ccs/e2e_helpers.ts";

let d: CncopdHandle;
before(async () => {
  d = await startCncopd();
});
after(async () => {
  await d.cleanup();
});

async function cloudCount(token: string, job: number): Promise<number> {
  const c = new NetworkClient({ url: d.url, token });
  let n = 0;
  for await (const _ of c.peek(String(job))) n++;
  c.close();
  return n;
}

function lastNqStats(home: HomePaths): Record<string, number> {
  const js = listReports(home.messages).filter((r) =>
    r.report?.kind === "JS" && r.report.program === "backupagentnq"
  );
  return js[js.length - 1]!.report!.stats!;
}

function tree(n: number): string {
  const src = join(tempDir(), "src");
  writeFiles(src, n, (i) => join("d", `s${i % 20}`, `f${i}`), (i) => `${i}`);
  writeFileSync(join(src, "keep.txt"), "keep");
  return src;
}

function ok(r: { status: number | null; stderr: string }, what: string) {
  assert.equal(r.status, 0, `${what} failed: ${r.stderr}`);
}

test("2,000 deleted: 1,500 go (the default collar), 500 pending go next run", async () => {
  const src = tree(2000);
  const { home, jobId, token } = await ccsHome(d, src);
  const r = await backup(home, jobId);
  ok(r.nq, "nq");
  ok(r.dq, "dq");
  assert.equal(await cloudCount(token, jobId), 2001);
  rmSync(join(src, "d"), { recursive: true });
  const r1 = await backup(home, jobId);
  ok(r1.nq, "nq");
  ok(r1.dq, "dq");
  assert.equal(await cloudCount(token, jobId), 501);
  assert.equal(lastNqStats(home).queuedDeletes, 1500);
  assert.equal(lastNqStats(home).pendingDeletes, 500);
  const r2 = await backup(home, jobId);
  ok(r2.nq, "nq");
  ok(r2.dq, "dq");
  assert.equal(await cloudCount(token, jobId), 1);
  assert.equal(lastNqStats(home).queuedDeletes, 500);
  assert.equal(lastNqStats(home).pendingDeletes, 0);
});

test("--nomaxdelete deletes all 2,000 at once", async () => {
  const src = tree(2000);
  const { home, jobId, token } = await ccsHome(d, src);
  ok((await backup(home, jobId)).dq, "dq");
  rmSync(join(src, "d"), { recursive: true });
  const r = await backup(home, jobId, ["--nomaxdelete"]);
  ok(r.nq, "nq");
  ok(r.dq, "dq");
  assert.equal(await cloudCount(token, jobId), 1);
  assert.equal(lastNqStats(home).queuedDeletes, 2000);
  assert.equal(lastNqStats(home).pendingDeletes, 0);
});

test("a missing or emptied source root deletes nothing and reports an error", async () => {
  const src = tree(20);
  const { home, jobId, token } = await ccsHome(d, src);
  ok((await backup(home, jobId)).dq, "dq");
  renameSync(src, `${src}.unmounted`);
  const r = await backup(home, jobId, ["--nomaxdelete"]);
  assert.equal(r.nq.status, 1);
  assert.equal(await cloudCount(token, jobId), 21);
  const je = listReports(home.messages).filter((x) => x.report?.kind === "JE");
  assert.match(je[je.length - 1]!.report!.message!, /missing/);
  // An empty mount point is the same case.
  mkdirSync(src);
  const r2 = await backup(home, jobId, ["--nomaxdelete"]);
  assert.equal(r2.nq.status, 1);
  assert.equal(await cloudCount(token, jobId), 21);
});
