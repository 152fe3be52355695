/**
 * End to end: the CCS agent driven by the dispatcher (cncopagent starts nq and dq together
 * with the same command line and a job session, then cncopreporter), and the options a
 * user reaches for: dry run, saved and logged peeks, include filters, links, locks.
 */
import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { acquireLock, appLockPath, jobLockPath } from "../../src/core/lock.ts";
import { listReports } from "../../src/core/spool.ts";
import { decodeForkState } from "../../src/ccs/file_state.ts";
import { native } from "../../src/native/mod.ts";
import { NetworkClient } from "../../src/network/client.ts";
import { type CncopdHandle, startCncopd } from "../helpers/cncopd.ts";
import { tempDir } from "../helpers/tmp.ts";
import { backup, ccsHome, cncop, requestsDuring, treeDigest } from "../ccs/e2e_helpers.ts";

let d: CncopdHandle;
before(async () => {
  d = await startCncopd();
});
after(async () => {
  await d.cleanup();
});

function ok(r: { status: number | null; stderr: string; stdout?: string }, what: string) {
  assert.equal(r.status, 0, `${what} failed: ${r.stderr}${r.stdout ?? ""}`);
}

async function cloudPaths(token: string, job: number): Promise<string[]> {
  const c = new NetworkClient({ url: d.url, token });
  const out: string[] = [];
  for await (const f of c.peek(String(job))) out.push(f.path);
  c.close();
  return out.sort();
}

function source(): string {
  const src = join(tempDir(), "src");
  mkdirSync(join(src, "docs"), { recursive: true });
  for (let i = 0; i < 25; i++) writeFileSync(join(src, "docs", `d${i}.md`), `# doc ${i}\n`);
  writeFileSync(join(src, "notes.tmp"), "scratch");
  return src;
}

test("cncopagent runs nq and dq together, then delivers the reports", async () => {
  const src = source();
  const { home, jobId, token, device } = await ccsHome(d, src);
  const r = await cncop(home, ["cncopagent", String(jobId)]);
  ok(r, "cncopagent");
  const out = join(tempDir(), "out");
  ok(await cncop(home, ["cncoprestore", String(jobId), "--to", out]), "restore");
  assert.deepEqual(treeDigest(out), treeDigest(src));
  assert.deepEqual(readdirSync(home.work).filter((f) => f.endsWith(".pack")), []);
  const c = new NetworkClient({ url: d.url, token });
  const types = (await c.reports(String(jobId))).map((x) => x.type);
  c.close();
  assert.ok(types.includes("JS") && types.includes("JF"), `reports: ${types}`);
  assert.deepEqual(readdirSync(home.messages).filter((f) => f.endsWith(".json")), []);

  // A second dispatcher run with a change: dq waits for nq of its session, then sends it.
  writeFileSync(join(src, "docs", "d3.md"), "# changed\n");
  ok(await cncop(home, ["cncopagent", String(jobId)]), "cncopagent again");
  const out2 = join(tempDir(), "out");
  ok(await cncop(home, ["cncoprestore", String(jobId), "--to", out2]), "restore");
  assert.deepEqual(treeDigest(out2), treeDigest(src));

  // Nothing changed: the agent asks the network nothing; only the run's reports are delivered.
  const quiet = await requestsDuring(d, device, token, async () => {
    ok(await cncop(home, ["cncopagent", String(jobId)]), "cncopagent, nothing changed");
  });
  assert.ok(quiet.length > 0, "the reports of the run were delivered");
  for (const l of quiet) assert.match(l, / POST \/v1\/jobs\/\d+\/reports 20[01] /);
});

test("--dryrun prints the queues, sends nothing and forces the next full peek", async () => {
  const src = source();
  const { home, jobId, token } = await ccsHome(d, src);
  const r = await cncop(home, ["backupagentnq", "-n", String(jobId)]);
  ok(r, "nq -n");
  assert.match(r.stdout, /ADD: 26/);
  assert.match(r.stdout, /\.\.\. 16 more/);
  assert.deepEqual(await cloudPaths(token, jobId), []);
  assert.deepEqual(readdirSync(home.work).filter((f) => f.endsWith(".pack")), []);
  ok(await cncop(home, ["backupagentdq", "-n", String(jobId)]), "dq -n exits at once");
  assert.equal(readdirSync(home.work).filter((f) => f.endsWith(".pack")).length, 0);

  ok((await backup(home, jobId)).dq, "backup");
  const nqLog = () =>
    readFileSync(join(home.logs, readdirSync(home.logs).find((f) => /^NQ-/.test(f))!), "utf8");
  ok(await cncop(home, ["backupagentnq", String(jobId)]), "unchanged run");
  const skips = nqLog().match(/nothing changed/g)?.length ?? 0;
  assert.equal(skips, 1, nqLog());
  ok(await cncop(home, ["backupagentnq", "-n", String(jobId)]), "dry run");
  ok(await cncop(home, ["backupagentnq", String(jobId)]), "run after the dry run");
  assert.equal(nqLog().match(/nothing changed/g)?.length, 1, "the dry run forced a full peek");
});

test("--savepeek and --peeklog write the cloud peek as XML; include filters log PEEK-NICLD", async () => {
  const src = source();
  const { home, jobId, token } = await ccsHome(d, src, { include: ["docs/**"] });
  ok((await backup(home, jobId)).dq, "first backup");
  assert.equal(
    (await cloudPaths(token, jobId)).length,
    25,
    "notes.tmp is outside the include filter",
  );
  const xml = join(tempDir(), "peek.xml");
  ok(
    await cncop(home, [
      "backupagentnq",
      "--forcepeek",
      "--savepeek",
      xml,
      "--peeklog",
      String(jobId),
    ]),
    "nq --savepeek --peeklog",
  );
  const saved = readFileSync(xml, "utf8");
  assert.equal(saved.match(/<file /g)?.length, 25);
  assert.match(saved, /path="docs\/d0.md"/);
  const pk = readdirSync(home.logs).filter((f) => f.startsWith("NQPK-"));
  assert.equal(pk.length, 1);
  assert.equal(readFileSync(join(home.logs, pk[0]!), "utf8").match(/<file /g)?.length, 25);
  const nq = readFileSync(
    join(home.logs, readdirSync(home.logs).find((f) => /^NQ-/.test(f))!),
    "utf8",
  );
  assert.match(nq, /PEEK-NICLD notes\.tmp/);
  const lines = nq.match(/PEEK-NICLD/g)?.length;
  ok(await cncop(home, ["backupagentnq", "--forcepeek", "--nicld", String(jobId)]), "--nicld");
  const again = readFileSync(
    join(home.logs, readdirSync(home.logs).find((f) => /^NQ-/.test(f))!),
    "utf8",
  );
  assert.equal(again.match(/PEEK-NICLD/g)?.length, lines, "--nicld logs no PEEK-NICLD line");
  // --skippeekcloud reuses the saved peek: no new XML is needed, the result is the same.
  ok(await cncop(home, ["backupagentnq", "--skippeekcloud", "--forcepeek", String(jobId)]), "skip");
});

test("symlinks are followed by default and skipped with --nolinks", async () => {
  const src = source();
  const outside = join(tempDir(), "outside.txt");
  writeFileSync(outside, "linked content");
  symlinkSync(outside, join(src, "link.txt"));
  const a = await ccsHome(d, src);
  ok((await backup(a.home, a.jobId)).dq, "backup");
  assert.ok((await cloudPaths(a.token, a.jobId)).includes("link.txt"));
  const b = await ccsHome(d, src);
  ok((await backup(b.home, b.jobId, ["--nolinks"])).dq, "backup --nolinks");
  assert.ok(!(await cloudPaths(b.token, b.jobId)).includes("link.txt"));
});

test("--noapplock logs to NQU-; --usevss is a clear error off Windows; bad options exit 2", async () => {
  const src = source();
  const { home, jobId } = await ccsHome(d, src);
  ok(await cncop(home, ["backupagentnq", "--noapplock", "--chunksize", "5", String(jobId)]), "nq");
  assert.ok(readdirSync(home.logs).some((f) => f.startsWith("NQU-")));
  if (process.platform !== "win32") {
    const v = await cncop(home, ["backupagentnq", "--usevss", String(jobId)]);
    assert.equal(v.status, 2);
    assert.match(v.stderr, /--usevss needs Windows/);
  }
  const bad = await cncop(home, ["backupagentdq", "--maxbacklog", "zero", String(jobId)]);
  assert.equal(bad.status, 2);
  const none = await cncop(home, ["backupagentnq", "no-such-job"]);
  assert.equal(none.status, 1);
  assert.match(none.stderr, /no job "no-such-job"/);
  assert.ok(existsSync(home.work));
});

/** Resolves once `file` exists and contains `re`. */
async function logShows(dir: string, prefix: string, re: RegExp): Promise<void> {
  for (;;) {
    const f = readdirSync(dir).find((n) => n.startsWith(prefix));
    if (f && re.test(readFileSync(join(dir, f), "utf8"))) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("a second backupagentnq waits for the application lock, a second run of a job for the job lock", async () => {
  const src = source();
  const { home, jobId } = await ccsHome(d, src);
  const app = await acquireLock(appLockPath(home, "backupagentnq"), { mode: "try", what: "app" });
  const nq = cncop(home, ["backupagentnq", String(jobId)]);
  await logShows(home.logs, "NQ-", /another backupagentnq is running: waiting/);
  app.release();
  ok(await nq, "nq after the application lock was released");

  const job = await acquireLock(jobLockPath(home, jobId), { mode: "try", what: "job" });
  const again = cncop(home, ["backupagentnq", "--noapplock", "--forcepeek", String(jobId)]);
  await logShows(home.logs, "NQU-", /another run of this job is active: waiting/);
  job.release();
  ok(await again, "nq after the job lock was released");
});

test("file state goes into a fork by default and not with --nofork", async () => {
  const src = source();
  if (!native.forksSupported(tempDir())) return; // no user xattrs on this filesystem
  const a = await ccsHome(d, src);
  ok((await backup(a.home, a.jobId)).dq, "backup");
  const state = native.forkRead(join(src, "docs", "d1.md"), "cncop.state");
  assert.ok(state, "a fork after the backup");
  // Written by the pack phase's read batch: the state of what it read.
  const st = statSync(join(src, "docs", "d1.md"), { bigint: true });
  assert.deepEqual(decodeForkState(state), {
    hash: native.blake3(Buffer.from("# doc 1\n")),
    size: "# doc 1\n".length,
    mtimeNs: String(st.mtimeNs),
  });
  assert.equal(state.length, 49, "small enough to sit in the inode");

  const src2 = source();
  const b = await ccsHome(d, src2);
  ok((await backup(b.home, b.jobId, ["--nofork"])).dq, "backup --nofork");
  assert.equal(native.forkRead(join(src2, "docs", "d1.md"), "cncop.state"), null);
});

test("a file that vanishes between peek and pack is a PACK-MISSING warning; --suppressmissing silences it", async () => {
  const src = source();
  const { home, jobId } = await ccsHome(d, src);
  // The dry run's peek saves the source listing; --skippeeksource then packs from it, so a
  // file removed in between vanished after the peek, every time.
  ok(await cncop(home, ["backupagentnq", "-n", String(jobId)]), "nq -n");
  rmSync(join(src, "docs", "d7.md"));
  const nqLog = () =>
    readFileSync(join(home.logs, readdirSync(home.logs).find((f) => /^NQ-/.test(f))!), "utf8");
  const lastStats = () => {
    const js = listReports(home.messages).filter((r) =>
      r.report?.kind === "JS" && r.report.program === "backupagentnq"
    );
    return js[js.length - 1]!.report!.stats!;
  };
  ok(await cncop(home, ["backupagentnq", "--skippeeksource", String(jobId)]), "nq");
  assert.match(nqLog(), /PACK-MISSING docs\/d7\.md: vanished before it was packed/);
  assert.equal(lastStats().missing, 1);
  const warnings = nqLog().match(/PACK-MISSING/g)!.length;

  const r = await cncop(home, [
    "backupagentnq",
    "--skippeeksource",
    "--suppressmissing",
    String(jobId),
  ]);
  ok(r, "nq --suppressmissing");
  assert.equal(lastStats().missing, 1, "still counted");
  assert.equal(nqLog().match(/PACK-MISSING/g)!.length, warnings, "no new PACK-MISSING line");
  assert.doesNotMatch(r.stderr, /PACK-MISSING/);

  // A real peek sees the file is gone; the backup then completes without it.
  ok((await backup(home, jobId)).dq, "backup");
  const out = join(tempDir(), "out");
  ok(await cncop(home, ["cncoprestore", String(jobId), "--to", out]), "restore");
  assert.deepEqual(treeDigest(out), treeDigest(src));
});
