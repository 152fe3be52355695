import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { appendFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { localDate } from "../../src/core/log_find.ts";
import { mainTs, runCli } from "../helpers/run_cli.ts";
import { tempHome } from "../helpers/tmp.ts";

const caName = (date: string, hm: string) => `CA-${date.slice(2)}_${hm}.log`;

test("w prints the newest log of a prefix, or of N days ago", () => {
  const home = tempHome();
  const env = { CNCOP_HOME: home.home };
  const today = localDate(new Date());
  const ago = localDate(new Date(), 3);
  writeFileSync(join(home.logs, caName(ago, "0100")), "three days ago\n");
  writeFileSync(join(home.logs, caName(today, "0100")), "early today\n");
  writeFileSync(join(home.logs, caName(today, "0200")), "later today\n");
  writeFileSync(join(home.logs, `NQ-${today}.log`), "enqueuer\n");
  assert.equal(runCli(["w"], env).stdout, "later today\n");
  assert.equal(runCli(["w", "nq"], env).stdout, "enqueuer\n");
  assert.equal(runCli(["w", "CA", "--daysago", "3"], env).stdout, "three days ago\n");
  const none = runCli(["w", "CA", "--daysago", "1"], env);
  assert.equal(none.status, 1);
  assert.match(none.stderr, /^w: no CA log from 1 day\(s\) ago in /);
  const bad = runCli(["w", "--daysago", "x"], env);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--daysago must be a whole number/);
});

test("w -f follows the log as it grows and moves on to a newer one", async () => {
  const home = tempHome();
  const today = localDate(new Date());
  const first = join(home.logs, caName(today, "0100"));
  writeFileSync(first, "line 1\n");
  const child = spawn(process.execPath, [mainTs, "w", "-f"], {
    env: { ...process.env, CNCOP_HOME: home.home },
  });
  let out = "";
  const seen = (text: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => out.includes(text) && (clearTimeout(t), resolve());
      const t = setTimeout(() => reject(new Error(`never saw ${text}; got ${out}`)), 20000);
      child.stdout.on("data", (d) => {
        out += d;
        check();
      });
      check();
    });
  await seen("line 1\n");
  appendFileSync(first, "line 2\n");
  await seen("line 2\n");
  writeFileSync(join(home.logs, caName(today, "0200")), "next run\n");
  await seen("next run\n");
  assert.match(out, /==> .*_0200\.log <==/);
  const closed = new Promise((r) => child.on("close", r));
  child.kill("SIGINT");
  await closed;
});
