/**
 * End to end: real cncopd, real backupagentnq / backupagentdq / cncoprestore processes.
 */
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type CncopdHandle, startCncopd } from "../helpers/cncopd.ts";
import { tempDir } from "../helpers/tmp.ts";
import {
  backup,
  ccsHome,
  cncop,
  countingProxy,
  packBytes,
  treeDigest,
} from "../ccs/e2e_helpers.ts";

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

test("first backup restores byte for byte; an unchanged tree makes no network request", async () => {
  const src = join(tempDir(), "src");
  mkdirSync(join(src, "docs/deep/er"), { recursive: true });
  writeFileSync(join(src, "docs/a.txt"), "alpha\n");
  writeFileSync(join(src, "docs/deep/er/b.bin"), Buffer.alloc(200_000, 3));
  writeFileSync(join(src, "empty"), "");
  const proxy = await countingProxy(d.port);
  try {
    const { home, jobId } = await ccsHome(d, src, {}, proxy.url);
    const r = await backup(home, jobId);
    ok(r.nq, "nq");
    ok(r.dq, "dq");
    const out = join(tempDir(), "out");
    ok(await cncop(home, ["cncoprestore", String(jobId), "--to", out]), "restore");
    assert.deepEqual(treeDigest(out), treeDigest(src));

    const before = proxy.requests();
    assert.ok(before > 0);
    const again = await backup(home, jobId);
    ok(again.nq, "nq (no change)");
    ok(again.dq, "dq (no change)");
    assert.equal(proxy.requests(), before, "a run with nothing changed contacts the network");
    const nqLog = readFileSync(
      join(home.logs, readdirSync(home.logs).find((f) => /^NQ-/.test(f))!),
      "utf8",
    );
    assert.match(nqLog, /nothing changed/);

    // --forcepeek overrides the skip.
    ok((await backup(home, jobId, ["--forcepeek"])).nq, "nq --forcepeek");
    assert.ok(proxy.requests() > before);
  } finally {
    await proxy.close();
  }
});

test("a few bytes edited in a large file are sent as a small pack-update", async () => {
  const src = join(tempDir(), "src");
  mkdirSync(src);
  const big = Buffer.alloc(4 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
  writeFileSync(join(src, "big.db"), big);
  const { home, jobId } = await ccsHome(d, src);
  const r = await backup(home, jobId);
  ok(r.nq, "nq");
  ok(r.dq, "dq");
  big.write("EDITED!", 2 << 20);
  writeFileSync(join(src, "big.db"), big);
  ok(await cncop(home, ["backupagentnq", String(jobId)]), "nq after edit");
  const sent = packBytes(home);
  assert.ok(sent > 0 && sent < big.length / 20, `pack-update of ${sent} bytes`);
  assert.match(
    readFileSync(join(home.logs, readdirSync(home.logs).find((f) => /^NQ-/.test(f))!), "utf8"),
    /1 update \(1 delta, 0 sent whole\)/,
  );
  // The first upload put the signature of its content into the local cache.
  assert.equal(readdirSync(join(home.work, "sigs")).length, 1);
  ok(await cncop(home, ["backupagentdq", String(jobId)]), "dq after edit");
  const out = join(tempDir(), "out");
  ok(await cncop(home, ["cncoprestore", String(jobId), "--to", out]), "restore");
  assert.deepEqual(treeDigest(out), treeDigest(src));
});

test("a renamed folder is one small move; the earlier time still restores the old paths", async () => {
  const src = join(tempDir(), "src");
  const n = 1000; // each pack costs the server fsyncs: keep the suite fast
  for (let i = 0; i < n; i++) {
    const dir = join(src, "Proposals", `p${i % 30}`);
    if (i < 30) mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `f${i}.txt`), `proposal ${i}\n`);
  }
  writeFileSync(join(src, "other.txt"), "stays\n");
  const { home, jobId } = await ccsHome(d, src);
  const first = await backup(home, jobId);
  ok(first.nq, "nq");
  ok(first.dq, "dq");
  const beforeRename = Date.now();
  await new Promise((r) => setTimeout(r, 20)); // the restore point must precede the move
  // One file changes and one vanishes inside the folder as it is renamed.
  writeFileSync(join(src, "Proposals", "p5", "f5.txt"), "proposal 5, second draft\n");
  rmSync(join(src, "Proposals", "p6", "f6.txt"));
  renameSync(join(src, "Proposals"), join(src, "2026-Proposals"));
  ok(await cncop(home, ["backupagentnq", String(jobId)]), "nq after rename");
  const sent = packBytes(home);
  assert.ok(sent > 0 && sent <= 4096, `rename sent ${sent} bytes of packs`);
  const nqLog = readFileSync(
    join(home.logs, readdirSync(home.logs).find((f) => /^NQ-/.test(f))!),
    "utf8",
  );
  assert.match(nqLog, /0 ADD, 1 UPDATE, 1 folder MOVE \+ 0 file MOVE, 1 DELETE/);
  ok(await cncop(home, ["backupagentdq", String(jobId)]), "dq after rename");

  const now = join(tempDir(), "now");
  ok(await cncop(home, ["cncoprestore", String(jobId), "--to", now]), "restore now");
  assert.deepEqual(treeDigest(now), treeDigest(src));
  const old = join(tempDir(), "old");
  ok(
    await cncop(home, ["cncoprestore", String(jobId), "--to", old, "--at", String(beforeRename)]),
    "restore before the rename",
  );
  const oldTree = treeDigest(old);
  assert.equal(oldTree.size, n + 1);
  assert.ok(oldTree.has(join("Proposals", "p7", "f7.txt")));
});
