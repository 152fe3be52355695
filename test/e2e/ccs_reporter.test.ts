/**
 * End to end: cncopreporter stores reports while the network is down and delivers them,
 * JE then JS then JF, when it is back; undeliverable reports expire after 5 days.
 */
import assert from "node:assert/strict";
import { readdirSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { writeReport } from "../../src/core/spool.ts";
import { NetworkClient } from "../../src/network/client.ts";
import { type CncopdHandle, startCncopd } from "../helpers/cncopd.ts";
import { tempDir } from "../helpers/tmp.ts";
import { ccsHome, cncop, fast } from "../ccs/e2e_helpers.ts";

let d: CncopdHandle;
before(async () => {
  d = await startCncopd();
});
after(async () => {
  await d.cleanup();
});

const base = { jobTitle: "docs", jobType: "CCS", session: "s1", program: "test" };

test("reports pile up while the network is down and go in JE, JS, JF order when it is back", async () => {
  const { home, jobId, token } = await ccsHome(d, tempDir());
  // Written in the reverse of the sending order.
  writeReport(home.messages, { ...base, kind: "JF", jobId, result: "OK" });
  writeReport(home.messages, { ...base, kind: "JS", jobId, stats: { files: 3 } });
  writeReport(home.messages, { ...base, kind: "JE", jobId, message: "boom" });
  await d.stop();
  try {
    const r = await cncop(home, ["cncopreporter"], fast);
    assert.equal(r.status, 75, r.stderr);
    assert.equal(readdirSync(home.messages).filter((f) => f.endsWith(".json")).length, 3);
  } finally {
    await d.restart();
  }
  const r = await cncop(home, ["cncopreporter"], fast);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(readdirSync(home.messages).filter((f) => f.endsWith(".json")), []);
  const c = new NetworkClient({ url: d.url, token });
  const got = await c.reports(String(jobId));
  c.close();
  assert.deepEqual(got.map((x) => x.type), ["JE", "JS", "JF"]);
  assert.equal(got[0]!.report.message, "boom");
});

test("a report the network refuses stays, and is dropped with a log line after 5 days", async () => {
  const { home } = await ccsHome(d, tempDir());
  const old = new Date(Date.now() - 6 * 86400_000).toISOString();
  // Reports larger than the network takes (413): a fresh one and one 6 days old.
  const huge = "x".repeat(1100 * 1024);
  const fresh = writeReport(home.messages, { ...base, kind: "JE", jobId: 1, message: huge });
  const stale = writeReport(home.messages, {
    ...base,
    kind: "JE",
    jobId: 1,
    message: huge,
    createdAt: old,
  });
  const garbage = join(home.messages, "JS-20200101T000000000-1-1-0001.json");
  writeFileSync(garbage, "{not json");
  utimesSync(garbage, new Date(old), new Date(old));
  const r = await cncop(home, ["cncopreporter"], fast);
  assert.equal(r.status, 1, r.stderr);
  const left = readdirSync(home.messages).filter((f) => f.endsWith(".json"));
  assert.deepEqual(left, [fresh.split("/").pop()]);
  assert.ok(!left.includes(stale.split("/").pop()!));
  const rp = readdirSync(home.logs).find((f) => f.startsWith("RP-"))!;
  const { readFileSync } = await import("node:fs");
  const text = readFileSync(join(home.logs, rp), "utf8");
  assert.match(text, /DROPPED JE-.*more than 5 days/);
  assert.match(text, /KEPT JE-/);
});
