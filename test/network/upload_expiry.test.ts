/**
 * Abandoned uploads expire: at server start, in the periodic sweep, and with `cncopd prune`;
 * an upload being appended to is never removed. Real cncopd processes and, where the sweep
 * must run at a chosen instant, the real server started in this process.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, statSync, utimesSync, writeFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { test } from "node:test";
import { tokenHash } from "../../src/network/auth.ts";
import { startServer } from "../../src/network/server.ts";
import { parseAge } from "../../src/network/upload_sweep.ts";
import { startCncopd } from "../helpers/cncopd.ts";
import { tempDir } from "../helpers/tmp.ts";

async function call(
  url: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(url + path, {
    method,
    body: body instanceof Uint8Array ? body : body === undefined ? undefined : JSON.stringify(body),
    headers: { authorization: `Bearer ${token}`, ...headers },
  });
  return { status: r.status, body: await r.json() as Record<string, unknown> };
}

/** Creates upload `id` of job 7 and sends its first `n` bytes. */
async function partial(url: string, token: string, id: string, n: number): Promise<void> {
  assert.equal(
    (await call(url, token, "POST", "/v1/jobs/7/uploads", { id, size: 1000 })).status,
    201,
  );
  if (n === 0) return;
  const r = await call(url, token, "PATCH", `/v1/jobs/7/uploads/${id}`, new Uint8Array(n), {
    "upload-offset": "0",
  });
  assert.equal(r.status, 200);
  assert.equal(r.body.offset, n);
}

/** The part file of upload `id` (the only job's directory under uploads/). */
function partOf(dataDir: string, id: string): string {
  const jobs = readdirSync(join(dataDir, "uploads"));
  assert.equal(jobs.length, 1);
  return join(dataDir, "uploads", jobs[0]!, `${id}.part`);
}

function age(path: string, ms: number): void {
  const t = (Date.now() - ms) / 1000;
  utimesSync(path, t, t);
}

const DAY = 86400_000;

test("an upload untouched for 7 days is removed at server start; a recent one stays", async () => {
  const d = await startCncopd();
  try {
    await partial(d.url, d.token, "old", 100);
    await partial(d.url, d.token, "recent", 100);
    await d.stop();
    age(partOf(d.dataDir, "old"), 8 * DAY);
    age(partOf(d.dataDir, "recent"), 6 * DAY);
    // A part file whose upload row is gone (a crash between applying and removing it).
    const stray = join(partOf(d.dataDir, "old"), "..", "stray.part");
    writeFileSync(stray, "leftover");
    age(stray, 8 * DAY);
    await d.restart();
    assert.equal((await call(d.url, d.token, "GET", "/v1/jobs/7/uploads/old")).status, 404);
    assert.ok(!existsSync(partOf(d.dataDir, "old")));
    assert.ok(!existsSync(stray));
    const recent = await call(d.url, d.token, "GET", "/v1/jobs/7/uploads/recent");
    assert.equal(recent.status, 200);
    assert.equal(recent.body.offset, 100);
    // The client that comes back after the expiry starts afresh under the same name.
    await partial(d.url, d.token, "old", 10);
  } finally {
    await d.cleanup();
  }
});

test("--upload-expiry sets the age for serve and for cncopd prune", async () => {
  const d = await startCncopd({ serveArgs: ["--upload-expiry", "2h"] });
  try {
    await partial(d.url, d.token, "a", 100);
    await partial(d.url, d.token, "b", 0); // created, never a byte sent
    await d.stop();
    age(partOf(d.dataDir, "a"), 3 * 3600_000);
    await d.restart();
    assert.equal((await call(d.url, d.token, "GET", "/v1/jobs/7/uploads/a")).status, 404);
    assert.equal((await call(d.url, d.token, "GET", "/v1/jobs/7/uploads/b")).status, 200);
    await d.stop();

    await d.restart();
    await partial(d.url, d.token, "c", 100);
    await d.stop();
    const kept = await d.admin(["prune", "--upload-expiry", "1d"]);
    assert.equal(kept.code, 0, kept.stderr);
    assert.match(kept.stdout, / 0 abandoned uploads/);
    age(partOf(d.dataDir, "c"), 3 * 3600_000);
    const r = await d.admin(["prune", "--upload-expiry", "1h"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, / 1 abandoned uploads and 0 stray part files \(100 bytes\)/);
    assert.ok(!existsSync(partOf(d.dataDir, "c")));
    const bad = await d.admin(["prune", "--upload-expiry", "soon"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--upload-expiry must be an age/);
  } finally {
    await d.cleanup();
  }
});

test("an upload being appended to right now is never swept", async () => {
  const dataDir = join(tempDir(), "data");
  // Expiry 0: everything not in use is old enough; the sweep runs only when called.
  const logged: string[] = [];
  const s = await startServer({
    dataDir,
    port: 0,
    uploadExpiryMs: 0,
    uploadSweepMs: DAY,
    log: (l) => logged.push(l),
  });
  try {
    const token = "cncop_test-token-expiry";
    s.data.catalog.addDevice("dev1", tokenHash(token));
    await partial(s.url, token, "busy", 0);

    // A PATCH whose body arrives in two halves; the sweep runs between them.
    const req = http.request(s.url + "/v1/jobs/7/uploads/busy", {
      method: "PATCH",
      headers: {
        authorization: `Bearer ${token}`,
        "upload-offset": "0",
        "content-length": "200",
      },
    });
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      req.on("response", (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
    });
    req.write(new Uint8Array(100));
    const part = partOf(dataDir, "busy");
    while (!existsSync(part) || statSync(part).size < 100) {
      await new Promise((r) => setTimeout(r, 5));
    }
    age(part, DAY);
    const during = await s.sweepUploads();
    assert.deepEqual(during, { uploads: 0, orphans: 0, bytes: 0 }, "the busy upload stays");
    req.end(new Uint8Array(100));
    const done = await answer;
    assert.equal(done.status, 200, done.body);
    assert.equal((JSON.parse(done.body) as { offset: number }).offset, 200);

    age(part, DAY);
    const after = await s.sweepUploads();
    assert.equal(after.uploads, 1);
    assert.ok(!existsSync(part));
    assert.equal((await call(s.url, token, "GET", "/v1/jobs/7/uploads/busy")).status, 404);
    assert.deepEqual(logged, [
      "cncopd: removed 1 abandoned upload(s) and 0 stray part file(s) (200 bytes)",
    ]);
  } finally {
    await s.close();
  }
});

test("a running server sweeps periodically", async () => {
  const dataDir = join(tempDir(), "data");
  const s = await startServer({
    dataDir,
    port: 0,
    uploadExpiryMs: DAY,
    uploadSweepMs: 20, // hourly by default
    log: () => {},
  });
  try {
    const token = "cncop_test-token-periodic";
    s.data.catalog.addDevice("dev1", tokenHash(token));
    await partial(s.url, token, "left", 100);
    age(partOf(dataDir, "left"), 2 * DAY);
    // No request and no call: only the timer can remove it.
    for (let i = 0; i < 1000 && existsSync(partOf(dataDir, "left")); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(!existsSync(partOf(dataDir, "left")), "the periodic sweep removed it");
    assert.equal((await call(s.url, token, "GET", "/v1/jobs/7/uploads/left")).status, 404);
  } finally {
    await s.close();
  }
});

test("ages parse with units", () => {
  assert.equal(parseAge("--x", "7d"), 7 * DAY);
  assert.equal(parseAge("--x", "12h"), 12 * 3600_000);
  assert.equal(parseAge("--x", "30m"), 30 * 60_000);
  assert.equal(parseAge("--x", "90"), 90_000);
  assert.throws(() => parseAge("--x", "-1d"), /--x must be an age/);
});
