import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import {
  addJob,
  alive,
  cncopagent,
  editJob,
  records,
  reports,
  startCncopagent,
  testHome,
  waitForFile,
} from "../helpers/dispatcher.ts";

const posix = process.platform !== "win32";

test("cncopagent skips a job another cncopagent is running; other jobs still run", {
  timeout: 60_000,
}, async () => {
  const h = testHome();
  const go = join(h.state, "go");
  const held = addJob(h, { title: "Held", agentArgs: ["--wait-file", go] });
  const free = addJob(h, { title: "Free" });
  // Two dispatchers with the same request, started at once.
  const a = startCncopagent(h, ["Held", "Free"]);
  const b = startCncopagent(h, ["Held", "Free"]);
  // Whichever got "Held" waits in its agent; the other skips it, runs "Free" and ends.
  const first = await Promise.race([a.done, b.done]);
  assert.equal(first.status, 0, first.log);
  assert.match(first.stdout, /"Held" \(RSYNC\): SKIPPED - already running in another cncopagent/);
  assert.match(first.stdout, /"Free" \(RSYNC\): OK/);
  assert.match(first.log, /job \d+ "Held" \(RSYNC\) is already running in another cncopagent/);
  writeFileSync(go, "");
  const [ra, rb] = await Promise.all([a.done, b.done]);
  const other = ra === first ? rb : ra;
  assert.equal(other.status, 0, other.log);
  assert.match(other.stdout, /"Held" \(RSYNC\): OK/);
  const starts = records(h).filter((r) => r.name === "rsyncagent");
  assert.equal(starts.filter((r) => (r.args as string[]).at(-1) === String(held.id)).length, 1);
  assert.equal(starts.filter((r) => (r.args as string[]).at(-1) === String(free.id)).length, 2);
  // One JF per started job: Held once, Free twice.
  assert.equal(reports(h, "JF").filter((r) => r.jobId === held.id).length, 1);
});

test("cncopagent: a crashed run does not block the next one", {
  skip: !posix,
  timeout: 60_000,
}, async () => {
  const h = testHome();
  const job = addJob(h, { title: "Crashy", agentArgs: ["--mode", "hang"] });
  const first = startCncopagent(h, ["Crashy"]);
  const hanging = join(h.state, `rsyncagent-${job.id}.hanging`);
  await waitForFile(hanging);
  first.kill("SIGKILL");
  await first.done;
  const orphan = Number(readFileSync(hanging, "utf8"));
  try {
    editJob(h, job.id, { agentArgs: ["--mode", "ok"] });
    const second = await cncopagent(h, ["Crashy"]);
    assert.equal(second.status, 0, second.log);
    assert.match(second.stdout, /"Crashy" \(RSYNC\): OK/);
  } finally {
    if (alive(orphan)) process.kill(orphan, "SIGKILL");
  }
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  test(`cncopagent on ${signal}: stops the agent, runs postrun-failure once, files the JF`, {
    skip: !posix,
    timeout: 60_000,
  }, async () => {
    const h = testHome();
    const job = addJob(h, {
      title: "Long",
      // Ignores SIGTERM: the dispatcher must kill it after the grace period.
      agentArgs: ["--mode", "hang-ignore-term"],
      postrunSuccess: "hook ok",
      postrunFailure: "hook failed",
      maxRetries: 3,
    });
    const next = addJob(h, { title: "Next" });
    const run = startCncopagent(h, ["Long", "Next"]);
    const hanging = join(h.state, `rsyncagent-${job.id}.hanging`);
    await waitForFile(hanging);
    const agentPid = Number(readFileSync(hanging, "utf8"));
    run.kill(signal);
    const out = await run.done;
    assert.equal(out.status, 1, out.log);
    assert.equal(alive(agentPid), false, "the agent was killed");
    const hooks = records(h).filter((r) => r.name === "hook").map((r) => r.label);
    assert.deepEqual(hooks, ["failed"]);
    const jfs = reports(h, "JF");
    assert.equal(jfs.length, 1);
    assert.equal(jfs[0]!.result, "ERROR");
    assert.equal(jfs[0]!.message, `cancelled (${signal})`);
    assert.equal(jfs[0]!.attempts, 1);
    assert.match(out.stdout, new RegExp(`"Long" \\(RSYNC\\): ERROR - cancelled \\(${signal}\\)`));
    assert.match(out.stdout, /"Next" \(RSYNC\): SKIPPED - not started: cancelled/);
    assert.match(out.log, /"Long" \(RSYNC\): finished ERROR - cancelled/);
    assert.equal(
      records(h).filter((r) => (r.args as string[]).at?.(-1) === `${next.id}`).length,
      0,
    );
    // The lock is released: the next run takes the job at once.
    editJob(h, job.id, { agentArgs: ["--mode", "ok"] });
    const again = await cncopagent(h, ["Long"]);
    assert.match(again.stdout, /"Long" \(RSYNC\): OK/);
  });
}

test("cncopagent: a second signal kills a hanging postrun-failure; no loop", {
  skip: !posix,
  timeout: 60_000,
}, async () => {
  const h = testHome();
  const job = addJob(h, {
    title: "Long",
    agentArgs: ["--mode", "hang"],
    postrunFailure: "hook failed --hang",
  });
  const run = startCncopagent(h, ["Long"]);
  await waitForFile(join(h.state, `rsyncagent-${job.id}.hanging`));
  run.kill("SIGTERM");
  // Wait until the post-failure command has started, then signal again.
  for (let i = 0; i < 500 && !records(h).some((r) => r.label === "failed"); i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  run.kill("SIGTERM");
  const out = await run.done;
  assert.equal(out.status, 1);
  assert.equal(records(h).filter((r) => r.label === "failed").length, 1);
  const jfs = reports(h, "JF");
  assert.equal(jfs.length, 1);
  assert.equal(jfs[0]!.message, "cancelled (SIGTERM)");
  assert.match(out.log, /postrun-failure failed \(cancelled \(killed by SIGKILL\)\)/);
  assert.ok(existsSync(out.logPath!));
});
