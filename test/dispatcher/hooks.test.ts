import assert from "node:assert/strict";
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { CommandRefusedError, resolveCommand, utf8Head } from "../../src/dispatcher/hooks.ts";
import { splitCommandLine } from "../../src/dispatcher/command_line.ts";
import { addJob, cncopagent, fakeHook, records, reports, testHome } from "../helpers/dispatcher.ts";
import { tempDir } from "../helpers/tmp.ts";

const posix = process.platform !== "win32";

test("splitCommandLine() splits on whitespace, groups quotes, keeps backslashes", () => {
  assert.deepEqual(splitCommandLine(`  prep.sh --dir "My Files" 'a "b"' C:\\x  `), [
    "prep.sh",
    "--dir",
    "My Files",
    'a "b"',
    "C:\\x",
  ]);
  assert.deepEqual(splitCommandLine(`a "" b`), ["a", "", "b"]);
  assert.throws(() => splitCommandLine(`a "b`), /unterminated " quote/);
});

test("utf8Head() cuts at 2,048 bytes without splitting a character", () => {
  assert.equal(utf8Head(Buffer.from("x".repeat(3000)), 2048).length, 2048);
  const s = "x".repeat(2047) + "é"; // é is 2 bytes: it does not fit
  assert.equal(utf8Head(Buffer.from(s), 2048), "x".repeat(2047));
});

test("resolveCommand() confines programs to Bin/", { skip: !posix }, () => {
  const home = tempDir();
  const bin = join(home, "Bin");
  mkdirSync(bin);
  mkdirSync(join(home, "Config"));
  for (const f of [join(bin, "ok.sh"), join(home, "Config", "evil.sh"), join(home, "out.sh")]) {
    writeFileSync(f, "#!/bin/sh\n");
    chmodSync(f, 0o755);
  }
  mkdirSync(join(bin, "sub"));
  writeFileSync(join(bin, "sub", "x.mjs"), "");
  symlinkSync(join(home, "out.sh"), join(bin, "link-out.sh"));
  symlinkSync(join(bin, "ok.sh"), join(bin, "link-in.sh"));

  assert.deepEqual(resolveCommand(bin, "ok.sh a 'b c'"), {
    file: join(bin, "ok.sh"),
    args: ["a", "b c"],
    env: {},
  });
  assert.equal(resolveCommand(bin, `${join(bin, "ok.sh")}`).file, join(bin, "ok.sh"));
  assert.equal(resolveCommand(bin, "link-in.sh").file, join(bin, "ok.sh"));
  assert.equal(resolveCommand(bin, "sub/../ok.sh").file, join(bin, "ok.sh"));
  const zx = resolveCommand(bin, "sub/x.mjs --flag");
  assert.deepEqual(zx.args.slice(-3), ["zx", join(bin, "sub", "x.mjs"), "--flag"]);

  for (
    const [cmd, why] of [
      ["../Config/evil.sh", /outside/],
      [join(home, "out.sh"), /outside/],
      ["/bin/sh -c true", /outside/],
      ["link-out.sh", /outside/],
      ["sub", /not a file/],
      ["missing.sh", /does not exist/],
      ["", /empty/],
      [`"ok.sh`, /unterminated/],
      [".", /outside/],
    ] as const
  ) {
    assert.throws(() => resolveCommand(bin, cmd), (err: unknown) => {
      assert.ok(err instanceof CommandRefusedError, String(err));
      assert.match(err.message, why, cmd);
      return true;
    });
  }
});

test("cncopagent runs prerun and postrun-success with the job in the environment", async () => {
  const h = testHome();
  const job = addJob(h, {
    title: "Hooked",
    prerun: "hook pre",
    postrunSuccess: "hook ok",
    postrunFailure: "hook failed",
  });
  const run = await cncopagent(h, ["Hooked"]);
  assert.equal(run.status, 0, run.log);
  const seq = records(h).map((r) => r.label ?? r.name);
  assert.deepEqual(seq, ["pre", "rsyncagent", "ok", "cncopreporter"]);
  const [pre, , post] = records(h);
  const [jf] = reports(h, "JF");
  assert.deepEqual(pre!.env, {
    CNCOP_JOB_ID: String(job.id),
    CNCOP_JOB_TITLE: "Hooked",
    CNCOP_JOB_TYPE: "RSYNC",
    CNCOP_HOME: h.paths.home,
    CNCOP_JOB_SESSION: jf!.session,
  });
  assert.equal(post!.env!.CNCOP_JOB_RESULT, "OK");
  // Their output goes into the CA log.
  assert.match(run.log, /\[prerun\] hook pre says hello/);
  assert.match(run.log, /\[postrun-success\] hook ok says hello/);
});

test("cncopagent runs postrun-failure (only) when the job fails", async () => {
  const h = testHome();
  addJob(h, {
    title: "Failing",
    prerun: "hook pre",
    postrunSuccess: "hook ok",
    postrunFailure: "hook failed",
    agentArgs: ["--mode", "error"],
  });
  const run = await cncopagent(h, ["Failing"]);
  assert.equal(run.status, 1);
  const seq = records(h).map((r) => r.label ?? r.name);
  assert.deepEqual(seq, ["pre", "rsyncagent", "failed", "cncopreporter"]);
  assert.equal(records(h)[2]!.env!.CNCOP_JOB_RESULT, "ERROR");
});

test("cncopagent: a failing prerun stops the job; its stderr (2,048 bytes) is a JE", async () => {
  const h = testHome();
  addJob(h, {
    title: "NoGo",
    prerun: "hook pre --exit 3 --stderr-bytes 5000",
    postrunFailure: "hook failed",
  });
  const run = await cncopagent(h, ["NoGo"]);
  assert.equal(run.status, 1);
  assert.deepEqual(records(h).map((r) => r.label ?? r.name), ["pre", "failed", "cncopreporter"]);
  const [je] = reports(h, "JE");
  const [jf] = reports(h, "JF");
  let expected = "";
  for (let i = 0; i < 2048; i++) expected += String.fromCharCode(65 + (i % 26));
  assert.equal(je!.message, expected);
  assert.equal(je!.session, jf!.session);
  assert.equal(je!.jobTitle, "NoGo");
  assert.equal(jf!.result, "ERROR");
  assert.equal(jf!.attempts, 0);
  assert.match(jf!.message!, /prerun failed \(exit status 3\)/);
  assert.match(run.stdout, /"NoGo" \(RSYNC\): ERROR - prerun failed \(exit status 3\)/);
});

test("cncopagent refuses commands outside Bin/ before they run", { skip: !posix }, async () => {
  const h = testHome();
  const outside = join(h.paths.home, "Config", "outside.sh");
  // If it ran, it would record itself like the test command.
  writeFileSync(outside, `#!/bin/sh\nexec '${process.execPath}' '${fakeHook}' outside\n`);
  chmodSync(outside, 0o755);
  symlinkSync(outside, join(h.paths.bin, "link.sh"));
  addJob(h, { title: "Dots", prerun: "../Config/outside.sh" });
  addJob(h, { title: "Abs", prerun: outside });
  addJob(h, { title: "Link", prerun: "link.sh" });
  addJob(h, { title: "PostOut", postrunSuccess: "link.sh" });
  const run = await cncopagent(h, ["Dots", "Abs", "Link", "PostOut"]);
  assert.equal(run.status, 1);
  assert.equal(records(h).filter((r) => r.label === "outside").length, 0, "nothing outside ran");
  const jf = Object.fromEntries(reports(h, "JF").map((r) => [r.jobTitle, r]));
  for (const t of ["Dots", "Abs", "Link"]) {
    assert.equal(jf[t]!.result, "ERROR");
    assert.match(jf[t]!.message!, /^prerun refused: .*outside/);
  }
  // A refused post command is reported, but the backup itself succeeded.
  assert.equal(jf.PostOut!.result, "OK");
  const je = reports(h, "JE").map((r) => `${r.jobTitle}: ${r.message}`);
  assert.equal(je.length, 4);
  assert.ok(je.some((m) => /^PostOut: postrun-success failed: .*outside/.test(m)), je.join("\n"));
  // The agent never ran for the refused preruns.
  assert.equal(records(h).filter((r) => r.name === "rsyncagent").length, 1);
});

test("cncopagent runs .mjs commands as zx scripts with $ available", async () => {
  const h = testHome();
  writeFileSync(
    join(h.paths.bin, "post.mjs"),
    `const out = await $\`echo from-zx\`;
fs.appendFileSync(process.env.FAKE_AGENT_LOG, JSON.stringify({
  name: "zx", label: out.stdout.trim(), args: argv._, env: { r: process.env.CNCOP_JOB_RESULT },
}) + "\\n");
`,
  );
  addJob(h, { title: "Zx", postrunSuccess: "post.mjs one two" });
  const run = await cncopagent(h, ["Zx"]);
  assert.equal(run.status, 0, run.log);
  const zx = records(h).find((r) => r.name === "zx");
  assert.deepEqual(zx, { name: "zx", label: "from-zx", args: ["one", "two"], env: { r: "OK" } });
});

test("cncopagent stops a command at the job's time limit", async () => {
  const h = testHome();
  addJob(h, { title: "Slow", prerun: "hook pre --hang", commandTimeout: 1 });
  const run = await cncopagent(h, ["Slow"]);
  assert.equal(run.status, 1);
  const [jf] = reports(h, "JF");
  assert.match(jf!.message!, /prerun failed \(timed out \(killed by SIGTERM\)\)/);
  assert.match(run.log, /time limit of 1 s reached/);
  assert.equal(records(h).filter((r) => r.name === "rsyncagent").length, 0);
});
