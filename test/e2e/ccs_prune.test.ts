/**
 * End to end: cloud deletes under the delete collar, and no deletes for a missing source.
 * The collar is 150 here instead of the default 1500 (same code path, a tenth of the files).
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
import { backup, ccsHome } from "../ccs/e2e_helpers.ts";

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
  mkdirSync(join(src, "d"), { recursive: true });
  for (let i = 0; i < n; i++) writeFileSync(join(src, "d", `f${i}`), `${i}`);
  writeFileSync(join(src, "keep.txt"), "keep");
  return src;
}

function ok(r: { status: number | null; stderr: string }, what: string) {
  assert.equal(r.status, 0, `${what} failed: ${r.stderr}`);
}

test("deletes stop at the collar, the rest are pending and go on the next run", async () => {
  const src = tree(200);
  const { home, jobId, token } = await ccsHome(d, src, { deleteCollar: 150 });
  const r = await backup(home, jobId);
  ok(r.nq, "nq");
  ok(r.dq, "dq");
  assert.equal(await cloudCount(token, jobId), 201);
  rmSync(join(src, "d"), { recursive: true });
  const r1 = await backup(home, jobId);
  ok(r1.nq, "nq");
  ok(r1.dq, "dq");
  assert.equal(await cloudCount(token, jobId), 51);
  assert.equal(lastNqStats(home).pendingDeletes, 50);
  const r2 = await backup(home, jobId);
  ok(r2.nq, "nq");
  ok(r2.dq, "dq");
  assert.equal(await cloudCount(token, jobId), 1);
  assert.equal(lastNqStats(home).pendingDeletes, 0);
});

test("--nomaxdelete deletes everything at once", async () => {
  const src = tree(200);
  const { home, jobId, token } = await ccsHome(d, src, { deleteCollar: 150 });
  ok((await backup(home, jobId)).dq, "dq");
  rmSync(join(src, "d"), { recursive: true });
  const r = await backup(home, jobId, ["--nomaxdelete"]);
  ok(r.nq, "nq");
  ok(r.dq, "dq");
  assert.equal(await cloudCount(token, jobId), 1);
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
