/**
 * End to end: real cncopd, real backupagentnq / backupagentdq / cncoprestore processes.
 */
import assert from "node:assert/strict";
import {
  cpSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join, sep } from "node:path";
import { after, before, test } from "node:test";
import { NetworkClient } from "../../src/network/client.ts";
import { type CncopdHandle, startCncopd } from "../helpers/cncopd.ts";
import { tempDir } from "../helpers/tmp.ts";
import {
  backup,
  ccsHome,
  cncop,
  packBytes,
  requestsDuring,
  treeDigest,
  writeFiles,
} from "../ccs/e2e_helpers.ts";

let d: CncopdHandle;
before(async () => {
  d = await startCncopd();
});
after(async () => {
  await d.cleanup();
});

/** Path (`/`-separated) -> size of every file under `root`. */
function sizes0(root: string): Map<string, number> {
  return new Map(
    [...treeDigest(root).keys()].map((p) => [p.split(sep).join("/"), statSync(join(root, p)).size]),
  );
}

function ok(r: { status: number | null; stderr: string }, what: string) {
  assert.equal(r.status, 0, `${what} failed: ${r.stderr}`);
}

test("first backup restores byte for byte; an unchanged tree makes no network request", async () => {
  const src = join(tempDir(), "src");
  mkdirSync(join(src, "docs/deep/er"), { recursive: true });
  writeFileSync(join(src, "docs/a.txt"), "alpha\n");
  writeFileSync(join(src, "docs/deep/er/b.bin"), Buffer.alloc(200_000, 3));
  writeFileSync(join(src, "empty"), "");
  const { home, jobId, token, device } = await ccsHome(d, src);
  const first = await requestsDuring(d, device, token, async () => {
    const r = await backup(home, jobId);
    ok(r.nq, "nq");
    ok(r.dq, "dq");
  });
  assert.ok(
    first.some((l) => / PATCH \/v1\/jobs\/\d+\/uploads\/\S+ 200 /.test(l)),
    first.join("\n"),
  );
  const out = join(tempDir(), "out");
  ok(await cncop(home, ["cncoprestore", String(jobId), "--to", out]), "restore");
  assert.deepEqual(treeDigest(out), treeDigest(src));

  // Nothing changed: the server's request log shows no request of the device for the run.
  const quiet = await requestsDuring(d, device, token, async () => {
    const again = await backup(home, jobId);
    ok(again.nq, "nq (no change)");
    ok(again.dq, "dq (no change)");
  });
  assert.deepEqual(quiet, [], "a run with nothing changed contacted the network");
  const nqLog = readFileSync(
    join(home.logs, readdirSync(home.logs).find((f) => /^NQ-/.test(f))!),
    "utf8",
  );
  assert.match(nqLog, /nothing changed/);
  // The first backup streamed: an empty cloud, so each file was packed as the walk found it.
  assert.match(nqLog, /3 ADD \(planned and packed with the walk\)/);

  // --forcepeek overrides the skip: the peek is a request.
  const forced = await requestsDuring(d, device, token, async () => {
    ok((await backup(home, jobId, ["--forcepeek"])).nq, "nq --forcepeek");
  });
  assert.ok(forced.some((l) => / GET \/v1\/jobs\/\d+\/files 200 /.test(l)), forced.join("\n"));
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
  const sigs = () => readdirSync(join(home.work, "sigs")).sort();
  const firstSig = sigs();
  assert.equal(firstSig.length, 1);
  ok(await cncop(home, ["backupagentdq", String(jobId)]), "dq after edit");
  const out = join(tempDir(), "out");
  ok(await cncop(home, ["cncoprestore", String(jobId), "--to", out]), "restore");
  assert.deepEqual(treeDigest(out), treeDigest(src));
  // The next peek drops the old content's signature: the cache keeps the current one only.
  ok(await cncop(home, ["backupagentnq", "--forcepeek", String(jobId)]), "nq after the update");
  assert.equal(sigs().length, 1, `signature cache: ${sigs()}`);
  assert.notDeepEqual(sigs(), firstSig, "the signature of the edited content replaced the old");
});

test("a renamed folder of 10,000 files is one small move; the earlier time restores the old paths", async () => {
  const src = join(tempDir(), "src");
  const n = 10_000;
  writeFiles(
    src,
    n,
    (i) => join("Proposals", `p${i % 100}`, `f${i}.txt`),
    (i) => `proposal ${i}\n`,
  );
  writeFileSync(join(src, "other.txt"), "stays\n");
  const { home, jobId, token, device } = await ccsHome(d, src);
  const first = await backup(home, jobId);
  ok(first.nq, "nq");
  ok(first.dq, "dq");
  // What the tree was before the rename (sizes of all, content of two folders for restores).
  const oldSizes = sizes0(src);
  const oldCopy = join(tempDir(), "old-copy");
  for (const f of ["p5", "p6"]) {
    cpSync(join(src, "Proposals", f), join(oldCopy, "Proposals", f), { recursive: true });
  }
  const beforeRename = Date.now();
  await new Promise((r) => setTimeout(r, 20)); // the restore point must precede the move
  // One file changes and one vanishes inside the folder as it is renamed.
  writeFileSync(join(src, "Proposals", "p5", "f5.txt"), "proposal 5, second draft\n");
  rmSync(join(src, "Proposals", "p6", "f6.txt"));
  renameSync(join(src, "Proposals"), join(src, "2026-Proposals"));
  const sent = await requestsDuring(d, device, token, async () => {
    const r = await backup(home, jobId);
    ok(r.nq, "nq after rename");
    ok(r.dq, "dq after rename");
  });
  // What the server received for uploads (pack bytes plus HTTP headers): a few KB.
  const uploaded = sent.filter((l) => / (POST|PATCH) \/v1\/jobs\/[^/ ]+\/uploads/.test(l))
    .reduce((sum, l) => sum + Number(l.split(" ")[5]), 0);
  assert.ok(
    uploaded > 0 && uploaded <= 8192,
    `the rename sent ${uploaded} bytes:\n${sent.join("\n")}`,
  );
  const nqLog = readFileSync(
    join(home.logs, readdirSync(home.logs).find((f) => /^NQ-/.test(f))!),
    "utf8",
  );
  assert.match(nqLog, /0 ADD, 1 UPDATE, 1 folder MOVE \+ 0 file MOVE, 1 DELETE/);

  // The cloud listing now and before the rename: every one of the 10,000 paths.
  const c = new NetworkClient({ url: d.url, token });
  const listing = async (at?: number) => {
    const out = new Map<string, number>();
    for await (const f of c.peek(String(jobId), { at })) out.set(f.path, f.size);
    return out;
  };
  assert.deepEqual(await listing(), sizes0(src), "the cloud shows the new paths");
  assert.deepEqual(await listing(beforeRename), oldSizes, "and the old ones at the earlier time");
  c.close();

  // Restores (a sample of folders: the whole tree would be 10,000 downloads twice): the
  // changed and the vanished file come back as they were before the rename, and as they are.
  for (
    const [path, at, from] of [
      ["2026-Proposals/p5", undefined, src],
      ["2026-Proposals/p6", undefined, src],
      ["Proposals/p5", beforeRename, oldCopy],
      ["Proposals/p6", beforeRename, oldCopy],
    ] as const
  ) {
    const to = join(tempDir(), "restored");
    const args = ["cncoprestore", String(jobId), path, "--to", to];
    if (at !== undefined) args.push("--at", String(at));
    ok(await cncop(home, args), `restore ${path}`);
    const want = new Map(
      [...treeDigest(join(from, path))].map(([p, h]) => [join(path, p), h]),
    );
    assert.equal(want.size, 100 - (path.endsWith("p6") && at === undefined ? 1 : 0));
    assert.deepEqual(treeDigest(to), want, `restore of ${path}`);
  }
});
