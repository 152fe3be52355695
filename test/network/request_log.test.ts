/**
 * cncopd's request log: one line per request in DATA/logs/requests-YYYY-MM-DD.log, with the
 * device, never a token or a query string; `--request-log PATH` redirects it, `-` turns it
 * off. Real cncopd processes on loopback.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import {
  formatRequestLine,
  loggedPath,
  removeOldRequestLogs,
} from "../../src/network/request_log.ts";
import { startCncopd } from "../helpers/cncopd.ts";
import { tempDir } from "../helpers/tmp.ts";

function call(
  url: string,
  path: string,
  token: string,
  init: { method?: string; body?: string | Uint8Array; headers?: Record<string, string> } = {},
): Promise<Response> {
  return fetch(url + path, {
    method: init.method ?? "GET",
    body: init.body,
    headers: { authorization: `Bearer ${token}`, ...init.headers },
  });
}

/** The request log's lines, once it has at least `n` of them (lines are written at close). */
async function linesOf(read: () => string, n: number): Promise<string[]> {
  for (let i = 0;; i++) {
    const lines = read().split("\n").filter((l) => l !== "");
    if (lines.length >= n || i > 200) return lines;
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("every request is one line: time, device, method, path, status, bytes, ms; no secrets", async () => {
  const d = await startCncopd({ device: "laptop" });
  try {
    const log = join(d.dataDir, "logs", `requests-${new Date().toISOString().slice(0, 10)}.log`);
    assert.equal((await call(d.url, "/v1/whoami", d.token)).status, 200);
    const bad = await call(d.url, "/v1/whoami", "cncop_not-a-token");
    assert.equal(bad.status, 401);
    await bad.text();
    const created = await call(d.url, "/v1/jobs/7/uploads", d.token, {
      method: "POST",
      body: JSON.stringify({ id: "up1", size: 1000 }),
      headers: { "content-type": "application/json" },
    });
    assert.equal(created.status, 201);
    await created.text();
    const chunk = new Uint8Array(300).fill(7);
    const patched = await call(d.url, "/v1/jobs/7/uploads/up1", d.token, {
      method: "PATCH",
      body: chunk,
      headers: { "upload-offset": "0" },
    });
    assert.equal(patched.status, 200);
    await patched.text();
    const listed = await call(d.url, "/v1/jobs/7/versions?path=secret%2Fplans.txt", d.token);
    await listed.text();

    const lines = await linesOf(() => readFileSync(log, "utf8"), 5);
    assert.equal(lines.length, 5, lines.join("\n"));
    const fields = lines.map((l) => l.split(" "));
    for (const f of fields) {
      assert.equal(f.length, 8, f.join(" "));
      assert.ok(!Number.isNaN(Date.parse(f[0]!)), f[0]);
      for (const n of f.slice(5)) assert.match(n, /^\d+$/);
    }
    assert.deepEqual(
      fields.map((f) => f.slice(1, 5).join(" ")),
      [
        "laptop GET /v1/whoami 200",
        "- GET /v1/whoami 401",
        "laptop POST /v1/jobs/7/uploads 201",
        "laptop PATCH /v1/jobs/7/uploads/up1 200",
        "laptop GET /v1/jobs/7/versions 200",
      ],
    );
    const patch = fields[3]!;
    assert.ok(Number(patch[5]) >= 300, `bytes in ${patch[5]}`);
    assert.ok(Number(patch[6]) > 0, `bytes out ${patch[6]}`);
    const text = lines.join("\n");
    assert.ok(!text.includes(d.token), "no token in the request log");
    assert.ok(!text.includes("not-a-token"), "no rejected token either");
    assert.ok(!text.includes("secret"), "no query string");
  } finally {
    await d.cleanup();
  }
});

test("--request-log PATH writes there (appending across restarts); - writes none", async () => {
  const file = join(tempDir(), "requests.log");
  const d = await startCncopd({ serveArgs: ["--request-log", file] });
  try {
    await (await call(d.url, "/v1/whoami", d.token)).text();
    assert.equal((await linesOf(() => readFileSync(file, "utf8"), 1)).length, 1);
    await d.stop();
    await d.restart();
    await (await call(d.url, "/v1/jobs", d.token)).text();
    const lines = await linesOf(() => readFileSync(file, "utf8"), 2);
    assert.equal(lines.length, 2);
    assert.match(lines[1]!, / dev1 GET \/v1\/jobs 200 /);
    assert.ok(!existsSync(join(d.dataDir, "logs")), "no daily log beside a redirected one");
  } finally {
    await d.cleanup();
  }
  const off = await startCncopd({ serveArgs: ["--request-log", "-"] });
  try {
    await (await call(off.url, "/v1/whoami", off.token)).text();
    assert.ok(!existsSync(join(off.dataDir, "logs")), "no request log with -");
  } finally {
    await off.cleanup();
  }
});

test("a request log that cannot be opened stops cncopd serve at start with a clear line", async () => {
  const d = await startCncopd();
  try {
    await d.stop();
    const r = await d.admin(["serve", "--listen", "127.0.0.1:0", "--request-log", "/"]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /request log/);
  } finally {
    await d.cleanup();
  }
});

test("the logged path is percent-encoded, bounded and has no query", () => {
  assert.equal(loggedPath("/v1/jobs/7/files?prefix=a%20b&at=1"), "/v1/jobs/7/files");
  assert.equal(loggedPath("/v1/x y\n"), "/v1/x%20y");
  assert.equal(loggedPath("/" + "a".repeat(2000)).length, 515);
  const line = formatRequestLine({
    start: 0,
    device: undefined,
    method: "GET",
    path: "/v1/whoami",
    status: 401,
    bytesIn: 10,
    bytesOut: 20,
    durationMs: 1.6,
  });
  assert.equal(line, "1970-01-01T00:00:00.000Z - GET /v1/whoami 401 10 20 2");
});

test("daily request logs older than --request-log-days (default 90) go at start", async () => {
  const dataDir = join(tempDir(), "data");
  const logs = join(dataDir, "logs");
  mkdirSync(logs, { recursive: true });
  const day = (ago: number) => new Date(Date.now() - ago * 86400_000).toISOString().slice(0, 10);
  for (const ago of [200, 91, 89, 1]) writeFileSync(join(logs, `requests-${day(ago)}.log`), "x\n");
  writeFileSync(join(logs, "notes.txt"), "not a request log");
  const d = await startCncopd({ dataDir });
  try {
    const left = readdirSync(logs).sort();
    assert.ok(
      !left.includes(`requests-${day(200)}.log`) && !left.includes(`requests-${day(91)}.log`),
    );
    assert.ok(left.includes(`requests-${day(89)}.log`) && left.includes(`requests-${day(1)}.log`));
    assert.ok(left.includes("notes.txt"));
  } finally {
    await d.cleanup();
  }
  assert.equal(removeOldRequestLogs(logs, 0), 0, "0 keeps every log");
  assert.equal(removeOldRequestLogs(logs, 30), 1);
  assert.equal(removeOldRequestLogs(join(logs, "none"), 30), 0);
});
