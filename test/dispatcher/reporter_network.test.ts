/**
 * cncopagent with the real cncopreporter and a real cncopd: reports are stored while the
 * network is down and delivered by a later run; the job result never depends on it.
 */
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { NetworkClient } from "../../src/network/client.ts";
import { type CncopdHandle, startCncopd } from "../helpers/cncopd.ts";
import { addJob, cncopagent, reports, testHome } from "../helpers/dispatcher.ts";

let d: CncopdHandle;
before(async () => {
  d = await startCncopd();
});
after(async () => {
  await d.cleanup();
});

test("cncopagent: reporter run with the network down leaves the reports; a later run delivers", {
  timeout: 120_000,
}, async () => {
  const h = testHome();
  rmSync(join(h.paths.bin, "cncopreporter")); // the real one, built in
  const token = await d.addDevice(`dispatcher-${process.pid}`);
  writeFileSync(h.paths.configFile, `[network]\nurl = ${d.url}\ntoken = ${token}\n`);
  const job = addJob(h, { title: "Pull" });
  const env = { CNCOP_NETWORK_RETRIES: "1", CNCOP_NETWORK_BACKOFF_MS: "50" };

  await d.stop();
  const down = await cncopagent(h, ["Pull"], env);
  assert.equal(down.status, 0, down.log);
  assert.match(down.stdout, /"Pull" \(RSYNC\): OK/);
  assert.match(down.log, /cncopreporter .*undelivered reports stay in Spool\/Messages/);
  const waiting = reports(h, "JF");
  assert.equal(waiting.length, 1);
  assert.equal(waiting[0]!.result, "OK");

  await d.restart();
  const up = await cncopagent(h, ["Pull"], env);
  assert.equal(up.status, 0, up.log);
  assert.match(up.log, /cncopreporter: done/);
  assert.deepEqual(reports(h), [], "the spool is empty");
  const c = new NetworkClient({ url: d.url, token });
  const sent = await c.reports(String(job.id));
  c.close();
  const jfs = sent.filter((r) => r.type === "JF");
  assert.equal(jfs.length, 2, JSON.stringify(sent));
  assert.deepEqual(jfs.map((r) => r.report.session), [
    waiting[0]!.session,
    /"Pull" \(RSYNC\): start, session (\S+)/.exec(up.log)?.[1],
  ]);
  assert.ok(jfs.every((r) => r.report.result === "OK"));
});
