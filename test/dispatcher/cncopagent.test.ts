import assert from "node:assert/strict";
import { readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { openWorkDb } from "../../src/ccs/work_queue.ts";
import { logBaseName } from "../../src/core/log.ts";
import {
  addJob,
  cncopagent,
  installAgent,
  records,
  reports,
  testHome,
} from "../helpers/dispatcher.ts";

const agentStarts = (h: ReturnType<typeof testHome>) =>
  records(h).filter((r) => r.name !== "hook" && r.name !== "cncopreporter");

test("cncopagent selects jobs by id and by title, once each, in the order given", async () => {
  const h = testHome();
  const a = addJob(h, { title: "Alpha" });
  const b = addJob(h, { title: "Beta", type: "SFTP" });
  addJob(h, { title: "Gamma" });
  const run = await cncopagent(h, ["beta", String(a.id), "BETA"]);
  assert.equal(run.status, 0, run.stderr);
  const started = agentStarts(h);
  assert.deepEqual(started.map((r) => [r.name, (r.args as string[]).at(-1)]), [
    ["sftpagent", String(b.id)],
    ["rsyncagent", String(a.id)],
  ]);
  assert.match(run.stdout, /job 2 "Beta" \(SFTP\): OK, 1 attempt/);
  assert.match(run.stdout, /job 1 "Alpha" \(RSYNC\): OK, 1 attempt/);
});

test("cncopagent --alljobs runs enabled PULL jobs by title, then PUSH jobs", async () => {
  const h = testHome();
  addJob(h, { title: "zulu cloud", type: "CCS" });
  addJob(h, { title: "Mike", type: "RSYNC" });
  addJob(h, { title: "alpha cloud", type: "CCS" });
  addJob(h, { title: "Yankee", type: "SFTP" });
  addJob(h, { title: "Bravo", type: "RSYNC", enabled: false });
  addJob(h, { title: "charlie", type: "FTP" });
  const run = await cncopagent(h, ["-a"]);
  assert.equal(run.status, 0, run.stderr);
  const order = [...run.stdout.matchAll(/^job \d+ "([^"]+)"/gm)].map((m) => m[1]);
  assert.deepEqual(order, ["charlie", "Mike", "Yankee", "alpha cloud", "zulu cloud"]);
  const nq = agentStarts(h).filter((r) => r.name === "backupagentnq");
  assert.equal(nq.length, 2);
});

test("cncopagent --type takes any case; an unknown type lists the known ones", async () => {
  const h = testHome();
  addJob(h, { title: "R2" });
  addJob(h, { title: "R1" });
  addJob(h, { title: "S1", type: "SFTP" });
  const run = await cncopagent(h, ["--type", "rSyNc"]);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual([...run.stdout.matchAll(/^job \d+ "([^"]+)"/gm)].map((m) => m[1]), [
    "R1",
    "R2",
  ]);
  const bad = await cncopagent(h, ["-t", "tape"]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /unknown job type "tape".*CCS, CIFS, FTP, FTPS, MSSQL, SFTP, RSYNC/);
});

test("cncopagent usage errors exit 2 and run nothing", async () => {
  const h = testHome();
  addJob(h, { title: "Only" });
  for (
    const [args, pattern] of [
      [[], /no jobs given/],
      [["nosuchjob"], /no job "nosuchjob"/],
      [["-a", "Only"], /only one of --alljobs/],
      [["--frobnicate"], /unknown option/],
    ] as const
  ) {
    const run = await cncopagent(h, [...args]);
    assert.equal(run.status, 2, `${args.join(" ")}: ${run.stderr}`);
    assert.match(run.stderr, pattern);
    assert.equal(run.stderr.trim().split("\n").length, 1, run.stderr);
  }
  assert.equal(records(h).length, 0);
  assert.deepEqual(readdirSync(h.paths.logs).filter((n) => n.startsWith("CA-")), []);
});

test("cncopagent passes -d, -c and the job's agent arguments, with the session", async () => {
  const h = testHome();
  const ini = join(h.paths.config, "other.ini");
  writeFileSync(ini, "[defaults]\ndays_of_logs = 90\n");
  const job = addJob(h, { title: "Args", agentArgs: ["--mode", "ok", "--skipdeletes"] });
  const run = await cncopagent(h, ["-d", "-c", ini, "Args"]);
  assert.equal(run.status, 0, run.stderr);
  const [start] = agentStarts(h);
  assert.deepEqual(start!.args, ["-d", "-c", ini, "--mode", "ok", "--skipdeletes", `${job.id}`]);
  assert.equal(start!.home, h.paths.home);
  const [jf] = reports(h, "JF");
  assert.equal(start!.session, jf!.session);
  // -d: the diagnostic log in Spool/Logs.
  const debugLogs = readdirSync(h.paths.spoolLogs).filter((n) => n.startsWith("CA-"));
  assert.equal(debugLogs.length, 1);
});

test("cncopagent: when the dispatcher itself fails it says so on stderr, exit 1", async () => {
  const h = testHome();
  addJob(h, { title: "One" });
  rmSync(h.paths.logs, { recursive: true });
  writeFileSync(h.paths.logs, "not a directory");
  const run = await cncopagent(h, ["One"]);
  assert.equal(run.status, 1);
  assert.match(run.stderr, /^cncopagent: internal error: .*Logs/);
});

test("cncopagent re-runs on RE-RUN until it succeeds, counting attempts", async () => {
  const h = testHome();
  addJob(h, { title: "Flaky", maxRetries: 3, agentArgs: ["--mode", "rerun:2"] });
  const run = await cncopagent(h, ["Flaky"]);
  assert.equal(run.status, 0, run.log);
  assert.equal(agentStarts(h).length, 3);
  const [jf] = reports(h, "JF");
  assert.equal(jf!.result, "OK");
  assert.equal(jf!.attempts, 3);
  assert.match(run.stdout, /"Flaky" \(RSYNC\): OK, 3 attempts/);
});

test("cncopagent ends a job as ERROR when the re-runs are used up", async () => {
  const h = testHome();
  addJob(h, { title: "Stuck", maxRetries: 2, agentArgs: ["--mode", "rerun-always"] });
  const run = await cncopagent(h, ["Stuck"]);
  assert.equal(run.status, 1);
  assert.equal(agentStarts(h).length, 3);
  const jfs = reports(h, "JF");
  assert.equal(jfs.length, 1);
  assert.equal(jfs[0]!.result, "ERROR");
  assert.equal(jfs[0]!.attempts, 3);
  assert.match(jfs[0]!.message!, /re-run after 3 attempts \(max retries 2\)/);
  assert.match(run.stdout, /"Stuck" \(RSYNC\): ERROR - .*re-run after 3 attempts.*, 3 attempts/);
});

test("cncopagent: ERROR is not re-run; a crash or an odd status is catastrophic", async () => {
  const h = testHome();
  addJob(h, { title: "Err", maxRetries: 3, agentArgs: ["--mode", "error"] });
  addJob(h, {
    title: "Crash",
    maxRetries: 3,
    agentArgs: ["--stderr", "disk on fire", "--mode", "crash"],
  });
  addJob(h, { title: "Odd", maxRetries: 3, agentArgs: ["--mode", "exit:3"] });
  addJob(h, { title: "Fine" });
  const run = await cncopagent(h, ["Err", "Crash", "Odd", "Fine"]);
  assert.equal(run.status, 1);
  assert.equal(agentStarts(h).length, 4, "no re-runs");
  const jf = Object.fromEntries(reports(h, "JF").map((r) => [r.jobTitle, r]));
  assert.equal(jf.Err!.result, "ERROR");
  assert.equal(jf.Crash!.result, "ERROR");
  assert.match(jf.Crash!.message!, /catastrophically: rsyncagent killed by SIGSEGV/);
  assert.match(jf.Odd!.message!, /catastrophically: rsyncagent exit status 3/);
  assert.equal(jf.Fine!.result, "OK");
  // The crashed agent's stderr is kept in the CA log.
  assert.match(run.log, /\[rsyncagent stderr\] disk on fire/);
  assert.match(run.log, /\[rsyncagent stderr\] rsyncagent: segmentation fault coming/);
});

test("cncopagent starts the CCS dequeuer once a pack is ready, while the enqueuer runs", async () => {
  const h = testHome();
  addJob(h, { title: "Cloud", type: "CCS" });
  // The enqueuer makes a pack ready, then waits until the dequeuer has started.
  installAgentWithArgs(h, "backupagentnq", ["--ready-item", "--peer", "backupagentdq"]);
  installAgentWithArgs(h, "backupagentdq", ["--take-ready"]);
  const run = await cncopagent(h, ["Cloud"]);
  assert.equal(run.status, 0, run.log);
  assert.deepEqual(agentStarts(h).map((r) => r.name), ["backupagentnq", "backupagentdq"]);
  const [nq, dq] = agentStarts(h);
  assert.equal(dq!.session, nq!.session);
  const own = ["--ready-item", "--peer", "backupagentdq", "--take-ready"];
  const jobArgs = (r: typeof nq) => (r!.args as string[]).filter((a) => !own.includes(a));
  assert.deepEqual(jobArgs(dq), jobArgs(nq));
  assert.match(run.log, /backupagentdq: packs are ready: starting it/);
  assert.equal(reports(h, "JF")[0]!.result, "OK");
});

test("cncopagent starts the CCS dequeuer as soon as the enqueuer peeks in full, before any pack", async () => {
  const h = testHome();
  addJob(h, { title: "Cloud", type: "CCS" });
  // The enqueuer found a change and waits for the dequeuer before it makes any pack. The
  // work.db exists already, so the dispatcher's look never fails open ("packs are ready").
  openWorkDb(join(h.paths.work, "work.db")).close();
  installAgentWithArgs(h, "backupagentnq", ["--peeking", "--peer", "backupagentdq"]);
  installAgentWithArgs(h, "backupagentdq", []);
  const run = await cncopagent(h, ["Cloud"]);
  assert.equal(run.status, 0, run.log);
  assert.deepEqual(agentStarts(h).map((r) => r.name), ["backupagentnq", "backupagentdq"]);
  assert.match(run.log, /backupagentdq: the enqueuer found changes: starting it/);
  assert.equal(reports(h, "JF")[0]!.result, "OK");
});

test("cncopagent starts the CCS dequeuer once for packs still ready when the enqueuer ended", async () => {
  const h = testHome();
  addJob(h, { title: "Cloud", type: "CCS" });
  // The enqueuer makes a pack ready and ends at once (before the dispatcher's next look).
  installAgentWithArgs(h, "backupagentnq", ["--ready-item"]);
  installAgentWithArgs(h, "backupagentdq", ["--take-ready"]);
  const run = await cncopagent(h, ["Cloud"]);
  assert.equal(run.status, 0, run.log);
  assert.deepEqual(agentStarts(h).map((r) => r.name), ["backupagentnq", "backupagentdq"]);
  assert.equal(reports(h, "JF")[0]!.result, "OK");
});

test("cncopagent does not start the CCS dequeuer when nothing was queued", async () => {
  const h = testHome();
  addJob(h, { title: "Cloud", type: "CCS" });
  installAgentWithArgs(h, "backupagentnq", []);
  installAgentWithArgs(h, "backupagentdq", []);
  const run = await cncopagent(h, ["Cloud"]);
  assert.equal(run.status, 0, run.log);
  assert.deepEqual(agentStarts(h).map((r) => r.name), ["backupagentnq"]);
  assert.match(run.log, /backupagentdq: nothing to send; not started/);
  assert.equal(reports(h, "JF")[0]!.result, "OK");
});

// Bin/<name> that adds `extra` after the job's own agent arguments are read.
function installAgentWithArgs(h: ReturnType<typeof testHome>, name: string, extra: string[]) {
  const file = installAgent(h.paths, name);
  // The test agent reads the first occurrence of an option: put ours first.
  const q = extra.map((e) => `'${e}'`).join(" ");
  writeFileSync(
    file,
    `#!/bin/sh\nexec '${process.execPath}' '${
      join(import.meta.dirname, "../fixtures/agents/fake_agent.mjs")
    }' ${name} ${q} "$@"\n`,
  );
}

test("cncopagent: CCS result is RE-RUN if either program asks, ERROR if either fails", async () => {
  const h = testHome();
  addJob(h, { title: "Cloud", type: "CCS", maxRetries: 1 });
  installAgentWithArgs(h, "backupagentnq", ["--ready-item"]);
  installAgentWithArgs(h, "backupagentdq", ["--mode", "rerun:1", "--take-ready"]);
  const run = await cncopagent(h, ["Cloud"]);
  assert.equal(run.status, 0, run.log);
  assert.equal(reports(h, "JF")[0]!.attempts, 2);
  assert.equal(agentStarts(h).length, 4);

  const h2 = testHome();
  addJob(h2, { title: "Cloud", type: "CCS", maxRetries: 1 });
  installAgentWithArgs(h2, "backupagentnq", ["--mode", "error"]);
  const run2 = await cncopagent(h2, ["Cloud"]);
  assert.equal(run2.status, 1);
  assert.equal(reports(h2, "JF")[0]!.result, "ERROR");
  assert.equal(reports(h2, "JF")[0]!.attempts, 1);
});

test("cncopagent: a type without an agent on this platform ends as ERROR", async () => {
  const h = testHome();
  addJob(h, { title: "Image", type: "WIMG" });
  addJob(h, { title: "Share", type: "CIFS" });
  const run = await cncopagent(h, ["Image", "Share"]);
  assert.equal(run.status, 1);
  const jf = Object.fromEntries(reports(h, "JF").map((r) => [r.jobTitle, r]));
  if (process.platform !== "win32") {
    assert.match(jf.Image!.message!, /no agent for type WIMG on this platform.*win32 only/);
  }
  assert.match(jf.Share!.message!, /no agent for type CIFS on this platform/);
  assert.equal(jf.Share!.attempts, 0);
  assert.match(run.stdout, /"Share" \(CIFS\): ERROR - no agent for type CIFS/);
});

test("cncopagent invokes cncopreporter after each job; its failure changes nothing", async () => {
  const h = testHome();
  addJob(h, { title: "One" });
  addJob(h, { title: "Two", agentArgs: ["--mode", "error"] });
  const run = await cncopagent(h, ["One", "Two"], { FAKE_REPORTER_EXIT: "75" });
  assert.equal(run.status, 1);
  const seq = records(h).map((r) => r.name);
  assert.deepEqual(seq, ["rsyncagent", "cncopreporter", "rsyncagent", "cncopreporter"]);
  // The JF was in the spool when the reporter ran, and stays there for the next run.
  assert.match(run.log, /\[cncopreporter\] reporter: 1 report\(s\) waiting/);
  assert.match(run.log, /cncopreporter exit status 75: undelivered reports stay/);
  const jf = Object.fromEntries(reports(h, "JF").map((r) => [r.jobTitle, r.result]));
  assert.deepEqual(jf, { One: "OK", Two: "ERROR" });
  assert.match(run.stdout, /"One" \(RSYNC\): OK/);
});

test("cncopagent adds -001, -002 to its CA log name when the name exists", async () => {
  const h = testHome();
  addJob(h, { title: "One" });
  // Take the names of this minute and the next, so a run straddling a minute still collides.
  const now = Date.now();
  const bases = [now, now + 60_000].map((t) => logBaseName("CA", "session", new Date(t)));
  for (const b of bases) {
    writeFileSync(join(h.paths.logs, `${b}.log`), "");
    writeFileSync(join(h.paths.logs, `${b}-001.log`), "");
  }
  const run = await cncopagent(h, ["One"]);
  assert.equal(run.status, 0);
  const name = run.logPath!.slice(h.paths.logs.length + 1);
  assert.ok(bases.some((b) => name === `${b}-002.log`), name);
  assert.match(run.log, /"One" \(RSYNC\): finished OK/);
});

test("cncopagent prunes logs older than days_of_logs (90 by default)", async () => {
  const h = testHome();
  const day = 86_400_000;
  const make = (dir: string, name: string, ageDays: number) => {
    const p = join(dir, name);
    writeFileSync(p, "x\n");
    const t = new Date(Date.now() - ageDays * day);
    utimesSync(p, t, t);
  };
  make(h.paths.logs, "NQ-2020-01-01.log", 100);
  make(h.paths.logs, "CA-20-01-01_1200.log", 100);
  make(h.paths.logs, "NQ-2020-06-01.log", 50);
  make(h.paths.spoolLogs, "CA-2020-01-01.log", 95);
  make(h.paths.logs, "notes.txt", 400);
  const run = await cncopagent(h, ["--type", "sftp"]);
  assert.equal(run.status, 0, run.stderr);
  const left = readdirSync(h.paths.logs).filter((n) => !n.startsWith(".")).sort();
  assert.ok(left.includes("NQ-2020-06-01.log"));
  assert.ok(left.includes("notes.txt"));
  assert.ok(!left.includes("NQ-2020-01-01.log"));
  assert.ok(!left.includes("CA-20-01-01_1200.log"));
  assert.deepEqual(readdirSync(h.paths.spoolLogs).filter((n) => n.endsWith(".log")), []);

  writeFileSync(h.paths.configFile, "[defaults]\ndays_of_logs = 30\n");
  make(h.paths.logs, "NQ-2020-07-01.log", 10);
  const run2 = await cncopagent(h, ["--type", "sftp"]);
  assert.equal(run2.status, 0, run2.stderr);
  const left2 = readdirSync(h.paths.logs);
  assert.ok(!left2.includes("NQ-2020-06-01.log"));
  assert.ok(left2.includes("NQ-2020-07-01.log"));
  assert.match(run2.log, /pruned 1 log\(s\) older than 30 days/);
});
