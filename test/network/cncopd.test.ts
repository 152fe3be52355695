import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import {
  chmod,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  utimes,
  writeFile,
} from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { DatabaseSync } from "node:sqlite";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { packAdd, packDelete, packMove, packUpdate } from "../../src/ccs/pack_writer.ts";
import { NetworkError, PackRejectedError } from "../../src/core/errors.ts";
import { NetworkClient, type RemoteFile } from "../../src/network/client.ts";
import { restoreFiles } from "../../src/network/restore.ts";
import { type CncopdHandle, startCncopd } from "../helpers/cncopd.ts";

const MAIN = resolve(import.meta.dirname ?? ".", "../../src/cli/main.ts");
const hasNative = existsSync(resolve(import.meta.dirname ?? ".", "../../src/native/mod.ts"));

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), "cncop-net-"));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

let packNo = 0;
function packPath(): string {
  return join(work, `p${++packNo}.pack`);
}

async function collect(it: AsyncIterable<RemoteFile>): Promise<RemoteFile[]> {
  const out: RemoteFile[] = [];
  for await (const f of it) out.push(f);
  return out;
}

/** A file tree: relative path -> content. Written with distinct mtimes and modes. */
async function writeTree(root: string, files: Record<string, Buffer>): Promise<void> {
  let i = 0;
  for (const [rel, data] of Object.entries(files)) {
    const p = join(root, ...rel.split("/"));
    await mkdir(join(p, ".."), { recursive: true });
    await writeFile(p, data);
    await chmod(p, i % 2 ? 0o600 : 0o640);
    const t = 1_600_000_000 + i++ * 1000;
    await utimes(p, t, t);
  }
}

async function assertTree(root: string, src: string, files: string[], dest = files): Promise<void> {
  const found: string[] = [];
  const walk = async (d: string, rel: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(join(d, e.name), r);
      else found.push(r);
    }
  };
  await walk(root, "");
  assert.deepEqual(found.sort(), [...dest].sort());
  for (let i = 0; i < files.length; i++) {
    const a = join(src, ...files[i]!.split("/"));
    const b = join(root, ...dest[i]!.split("/"));
    assert.deepEqual(await readFile(b), await readFile(a), dest[i]);
    const [sa, sb] = [await stat(a), await stat(b)];
    assert.equal(sb.mode & 0o7777, sa.mode & 0o7777, `mode of ${dest[i]}`);
    assert.equal(Math.floor(sb.mtimeMs), Math.floor(sa.mtimeMs), `mtime of ${dest[i]}`);
  }
}

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [MAIN, ...args], (err, stdout, stderr) => {
      const code = err ? Number((err as { code?: number }).code ?? 1) : 0;
      res({ code, stdout, stderr });
    });
  });
}

for (const tls of [false, true]) {
  describe(`cncopd over ${tls ? "HTTPS" : "HTTP"}`, () => {
    let d: CncopdHandle;
    let client: NetworkClient;
    before(async () => {
      d = await startCncopd({ tls });
      client = new NetworkClient({
        url: d.url,
        token: d.token,
        caFile: d.caFile,
        retries: 2,
        backoffMs: 50,
      });
    });
    after(async () => {
      client.close();
      await d.cleanup();
    });

    test("add, move a file and a folder, delete, peek, restore at two points in time", async () => {
      const src = join(work, `src-${tls}`);
      const files = {
        "a.txt": Buffer.from("alpha\n"),
        "docs/x.bin": randomBytes(300_000),
        "docs/sub/y.txt": Buffer.from("why\n"),
        "empty": Buffer.alloc(0),
      };
      await writeTree(src, files);
      for (const rel of Object.keys(files)) {
        const r = await client.uploadPack(
          "7",
          (await packAdd(packPath(), {
            job: "7",
            path: rel,
            source: join(src, ...rel.split("/")),
          })).path,
          { chunkSize: 64 * 1024 },
        );
        assert.equal(r.result.kind, "add");
      }
      const first = await collect(client.peek("7"));
      assert.deepEqual(first.map((f) => f.path), [
        "a.txt",
        "docs/sub/y.txt",
        "docs/x.bin",
        "empty",
      ]);
      const t1 = Math.max(...first.map((f) => f.created));

      await client.uploadPack(
        "7",
        (await packMove(packPath(), { job: "7", path: "a.txt", newPath: "b.txt" })).path,
      );
      await client.uploadPack(
        "7",
        (await packMove(packPath(), { job: "7", path: "docs", newPath: "documents", folder: true }))
          .path,
      );
      await client.uploadPack(
        "7",
        (await packDelete(packPath(), { job: "7", path: "documents/sub/y.txt" })).path,
      );
      const now = await collect(client.peek("7"));
      assert.deepEqual(now.map((f) => f.path), ["b.txt", "documents/x.bin", "empty"]);
      assert.equal(now[1]!.hash, first[2]!.hash, "a moved file keeps its content");
      assert.deepEqual(
        (await collect(client.peek("7", { prefix: "documents" }))).map((f) => f.path),
        [
          "documents/x.bin",
        ],
      );

      const then = join(work, `then-${tls}`);
      await restoreFiles({ client, job: "7", at: t1, to: then });
      await assertTree(then, src, Object.keys(files));

      const today = join(work, `now-${tls}`);
      await restoreFiles({ client, job: "7", to: today });
      await assertTree(today, src, ["a.txt", "docs/x.bin", "empty"], [
        "b.txt",
        "documents/x.bin",
        "empty",
      ]);

      const hist = await client.versions("7", "docs/sub/y.txt");
      assert.equal(hist.length, 1);
      assert.equal(hist[0]!.deleted, true);
      assert.ok(hist[0]!.ended !== null);
    });

    if (tls) {
      test("a client without the private CA fails at once with a hint, no retries", async () => {
        const c = new NetworkClient({ url: d.url, token: d.token, retries: 5, backoffMs: 10_000 });
        await assert.rejects(
          c.whoami(),
          (e: unknown) => e instanceof NetworkError && /ca_file/.test(e.hint ?? ""),
        );
        c.close();
      });
    }

    test("cncoprestore restores a file and never overwrites without --overwrite", async () => {
      const src = join(work, `cli-src-${tls}`);
      await writeTree(src, { "c/one.txt": Buffer.from("one") });
      await client.uploadPack(
        "8",
        (await packAdd(packPath(), {
          job: "8",
          path: "c/one.txt",
          source: join(src, "c", "one.txt"),
        })).path,
      );
      const to = join(work, `cli-to-${tls}`);
      const args = ["cncoprestore", "8", "c", "--to", to, "--url", d.url, "--token", d.token];
      if (d.caFile) args.push("--ca-file", d.caFile);
      const r1 = await runCli(args);
      assert.equal(r1.code, 0, r1.stderr);
      assert.equal(await readFile(join(to, "c", "one.txt"), "utf8"), "one");
      await writeFile(join(to, "c", "one.txt"), "local change");
      const r2 = await runCli(args);
      assert.equal(r2.code, 1);
      assert.match(r2.stderr, /--overwrite/);
      assert.equal(await readFile(join(to, "c", "one.txt"), "utf8"), "local change");
      const r3 = await runCli([...args, "--overwrite"]);
      assert.equal(r3.code, 0, r3.stderr);
      assert.equal(await readFile(join(to, "c", "one.txt"), "utf8"), "one");
      const list = await runCli([...args.filter((a) => a !== "--to" && a !== to), "--list"]);
      assert.match(list.stdout, /c\/one\.txt/);
    });
  });
}

describe("cncopd packs, reports, retention", () => {
  let d: CncopdHandle;
  let client: NetworkClient;
  before(async () => {
    d = await startCncopd();
    client = new NetworkClient({ url: d.url, token: d.token, retries: 2, backoffMs: 50 });
  });
  after(async () => {
    client.close();
    await d.cleanup();
  });

  test("uploadPack() of a corrupt pack or one for another job is rejected and stores nothing", async () => {
    const f = join(work, "r.txt");
    await writeFile(f, randomBytes(5000));
    const p = await packAdd(packPath(), { job: "9", path: "r.txt", source: f });
    const bytes = await readFile(p.path);
    const bad = join(work, "bad.pack");
    for (const at of [200, bytes.length - 100]) {
      const copy = Buffer.from(bytes);
      copy[at]! ^= 0xff;
      await writeFile(bad, copy);
      await assert.rejects(client.uploadPack("9", bad), PackRejectedError);
    }
    await assert.rejects(client.uploadPack("10", p.path), /is for job "9"/);
    assert.deepEqual(await collect(client.peek("9")), []);
    // The same pack uploaded twice applies once.
    const a = await client.uploadPack("9", p.path);
    const b = await client.uploadPack("9", p.path);
    assert.deepEqual(a.result, b.result);
    assert.equal((await client.versions("9", "r.txt")).length, 1);
  });

  test("an upload cut mid-way resumes: the retry sends only the rest; a repeated chunk is harmless", async () => {
    const f = join(work, "big.bin");
    const data = randomBytes(3_000_000);
    await writeFile(f, data);
    const p = await packAdd(packPath(), {
      job: "14",
      path: "big.bin",
      source: f,
      compression: "none",
    });
    const bytes = await readFile(p.path);
    const created = await client.json<{ offset: number }>({
      method: "POST",
      path: "/v1/jobs/14/uploads",
      headers: { "content-type": "application/json" },
      body: Buffer.from(JSON.stringify({ id: "cut1", size: bytes.length })),
    });
    assert.equal(created.offset, 0);
    // Send half of one big chunk, then cut the connection.
    const url = new URL("/v1/jobs/14/uploads/cut1", d.url);
    const req = http.request(url, {
      method: "PATCH",
      headers: {
        authorization: `Bearer ${d.token}`,
        "upload-offset": "0",
        "content-length": String(bytes.length),
      },
    });
    req.on("error", () => {});
    req.write(bytes.subarray(0, 1_500_000));
    const status = () =>
      client.json<{ offset: number }>({ method: "GET", path: "/v1/jobs/14/uploads/cut1" });
    while ((await status()).offset < 1_000_000) await new Promise((r) => setTimeout(r, 10));
    req.destroy();
    let cutAt = (await status()).offset;
    assert.ok(cutAt > 0 && cutAt <= 1_500_000, `cut at ${cutAt}`);
    // A repeated first chunk changes nothing.
    const again = await client.json<{ offset: number }>({
      method: "PATCH",
      path: "/v1/jobs/14/uploads/cut1",
      headers: { "upload-offset": "0" },
      body: bytes.subarray(0, 1000),
    }); // retried on 503 while the cut request still holds the upload
    assert.ok(again.offset >= cutAt);
    cutAt = (await status()).offset;
    const r = await client.uploadPack("14", p.path, { id: "cut1", chunkSize: 512 * 1024 });
    assert.equal(r.resumedFrom, cutAt);
    assert.equal(r.sentBytes, bytes.length - cutAt, "only the rest was sent");
    const to = join(work, "resume-to");
    await restoreFiles({ client, job: "14", to });
    assert.deepEqual(await readFile(join(to, "big.bin")), data);
  });

  test("sendReport() stores JE, JS and JF per job, once per id", async () => {
    await client.sendReport("11", "JE", { message: "disk full" }, "run1-je");
    await client.sendReport("11", "JE", { message: "disk full" }, "run1-je");
    await client.sendReport("11", "JS", { files: 3, bytes: 10 }, "run1-js");
    await client.sendReport("11", "JF", { status: "OK" }, "run1-jf");
    const all = await client.reports("11");
    assert.deepEqual(all.map((r) => r.type), ["JE", "JS", "JF"]);
    assert.equal(all[1]!.report.files, 3);
    assert.equal((await client.reports("11", "JF")).length, 1);
    await assert.rejects(client.sendReport("11", "XX" as "JE", {}), NetworkError);
  });

  test(
    "pack-update through a delta",
    { todo: hasNative ? false : "waiting for src/native/mod.ts" },
    async () => {
      if (!hasNative) return;
      const native = await import("../../src/network/native.ts").then((m) => m.loadNative());
      const base = join(work, "u-base");
      const next = join(work, "u-next");
      const baseData = randomBytes(400_000);
      await writeFile(base, baseData);
      const added = await client.uploadPack(
        "12",
        (await packAdd(packPath(), { job: "12", path: "u", source: base })).path,
      );
      const nextData = Buffer.concat([
        baseData.subarray(0, 200_000),
        Buffer.from("inserted"),
        baseData.subarray(200_000),
      ]);
      await writeFile(next, nextData);
      const sig = join(work, "u.sig");
      await client.fetchSignature("12", added.result.version!, sig);
      const delta = join(work, "u.delta");
      const stats = await native.delta(sig, next, delta);
      assert.ok(stats.deltaSize < 100_000, "the delta is small");
      const up = await client.uploadPack(
        "12",
        (await packUpdate(packPath(), {
          job: "12",
          path: "u",
          deltaPath: delta,
          base: added.result.version!,
          size: nextData.length,
          hash: stats.newBlake3,
          mtimeNs: 1n,
          mode: 0o644,
        })).path,
      );
      assert.equal(up.result.kind, "update");
      const to = join(work, "u-restore");
      await restoreFiles({ client, job: "12", to });
      assert.deepEqual(await readFile(join(to, "u")), nextData);
      const hist = await client.versions("12", "u");
      assert.equal(hist.length, 2);
    },
  );

  test("cncopd prune removes expired versions and unreferenced blobs; check stays clean", async () => {
    const f = join(work, "old.txt");
    await writeFile(f, randomBytes(1000));
    await client.setRetention("13", 0);
    await client.uploadPack(
      "13",
      (await packAdd(packPath(), { job: "13", path: "old.txt", source: f })).path,
    );
    await client.uploadPack(
      "13",
      (await packDelete(packPath(), { job: "13", path: "old.txt" })).path,
    );
    assert.equal((await client.versions("13", "old.txt")).length, 1);
    const r = await d.admin(["prune", "--grace", "0"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /pruned [1-9]\d* versions, [1-9]\d* blobs/);
    assert.equal((await client.versions("13", "old.txt")).length, 0);
    const c = await d.admin(["check"]);
    assert.equal(c.code, 0, c.stdout);
    assert.match(c.stdout, / 0 problems/);
  });
});

describe("cncopd auth", () => {
  let d: CncopdHandle;
  before(async () => {
    d = await startCncopd();
  });
  after(async () => {
    await d.cleanup();
  });

  function get(path: string, token?: string): Promise<{ status: number; body: string }> {
    return new Promise((res, rej) => {
      const req = http.get(`${d.url}${path}`, {
        headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      }, (r) => {
        let body = "";
        r.on("data", (c: Buffer) => (body += c.toString()));
        r.on("end", () => res({ status: r.statusCode ?? 0, body }));
      });
      req.on("error", rej);
    });
  }

  test("no token, a wrong token and a revoked token get 401; another device's job 404", async () => {
    const owner = new NetworkClient({ url: d.url, token: d.token, retries: 0 });
    const f = join(work, "secret.txt");
    await writeFile(f, "secret");
    const up = await owner.uploadPack(
      "7",
      (await packAdd(packPath(), { job: "7", path: "secret.txt", source: f })).path,
    );
    const v = up.result.version!;
    owner.close();

    assert.equal((await get("/v1/jobs/7/files")).status, 401);
    assert.equal((await get("/v1/jobs/7/files", "cncop_wrong")).status, 401);
    assert.equal((await get("/v1/jobs/7/files", d.token)).status, 200);

    const other = await d.addDevice("dev2");
    for (
      const path of [
        "/v1/jobs/7/files",
        `/v1/jobs/7/versions/${v}/content`,
        `/v1/jobs/7/versions?path=secret.txt`,
      ]
    ) {
      const r = await get(path, other);
      assert.equal(r.status, 404, path);
      assert.deepEqual(JSON.parse(r.body), { error: "not found" });
    }
    // dev2's own job 7 is another job: it cannot reach dev1's versions by id either.
    const c2 = new NetworkClient({ url: d.url, token: other, retries: 0 });
    await c2.sendReport("7", "JF", { status: "OK" });
    assert.equal((await get(`/v1/jobs/7/versions/${v}/content`, other)).status, 404);
    assert.deepEqual(await collect(c2.peek("7")), []);
    c2.close();

    const revoke = await d.admin(["device", "revoke", "dev2"]);
    assert.equal(revoke.code, 0, revoke.stderr);
    const r = await get("/v1/jobs/7/files", other);
    assert.equal(r.status, 401);
    assert.deepEqual(JSON.parse(r.body), { error: "unauthorized" });
    const c3 = new NetworkClient({ url: d.url, token: other, retries: 0 });
    await assert.rejects(
      c3.whoami(),
      (e: unknown) => e instanceof NetworkError && e.status === 401,
    );
    c3.close();
    const list = await d.admin(["device", "list"]);
    assert.match(list.stdout, /dev2\t.*revoked/);
    assert.doesNotMatch(list.stdout, /cncop_/, "tokens are never shown again");
  });
});

describe("cncopd check and restore verification", () => {
  let d: CncopdHandle;
  let client: NetworkClient;
  before(async () => {
    d = await startCncopd();
    client = new NetworkClient({ url: d.url, token: d.token, retries: 1, backoffMs: 50 });
  });
  after(async () => {
    client.close();
    await d.cleanup();
  });

  // 100 kB is kept in its pack (indexed in blobs/small.db), 1.5 MB as a file: both are
  // checked and verified.
  for (const size of [100_000, 1_500_000]) {
    test(`content ranges, request limits, a corrupt ${size}-byte blob found by check and refused by restore`, async () => {
      const job = String(20 + size % 7);
      const f = join(work, `chk-${size}.bin`);
      const data = randomBytes(size);
      await writeFile(f, data);
      const up = await client.uploadPack(
        job,
        (await packAdd(packPath(), { job, path: "chk.bin", source: f })).path,
      );
      const v = up.result.version!;
      const parts: Buffer[] = [];
      for await (const c of await client.openContent(job, v, size - 1000)) parts.push(c as Buffer);
      assert.deepEqual(Buffer.concat(parts), data.subarray(size - 1000));

      await assert.rejects(
        client.sendReport(job, "JE", { blob: "x".repeat(2 * 1024 * 1024) }),
        (e: unknown) => e instanceof NetworkError && e.status === 413,
      );

      const hash = (await client.version(job, v)).hash;
      // (An earlier case's blob may be reported missing by now; this one is sound.)
      assert.doesNotMatch((await d.admin(["check"])).stdout, new RegExp(hash));
      const blob = join(d.dataDir, "blobs", "1", hash.slice(0, 2), hash.slice(2, 4), hash);
      const small = size <= 1024 * 1024;
      assert.equal(existsSync(blob), !small);
      const db = small ? new DatabaseSync(join(d.dataDir, "blobs", "small.db")) : undefined;
      if (db) {
        const row = db.prepare("SELECT pack, offset, length FROM packed WHERE hash = ?").get(
          hash,
        ) as { pack: string; offset: number; length: number };
        const kept = join(d.dataDir, "blobs", "packs", "1", `${row.pack}.pack`);
        const bytes = await readFile(kept);
        bytes[row.offset + (row.length >> 1)]! ^= 1;
        await writeFile(kept, bytes);
      } else {
        const bytes = await readFile(blob);
        bytes[500]! ^= 1;
        await writeFile(blob, bytes);
      }
      const c = await d.admin(["check"]);
      assert.equal(c.code, 1);
      assert.match(c.stdout, new RegExp(`corrupt\\tdevice 1\\t${hash}`));
      const to = join(work, `chk-to-${size}`);
      await assert.rejects(restoreFiles({ client, job, to }));
      await assert.rejects(stat(join(to, "chk.bin")), { code: "ENOENT" });
      if (db) {
        db.prepare("DELETE FROM packed WHERE hash = ?").run(hash);
        db.close();
      } else await rm(blob);
      assert.match((await d.admin(["check"])).stdout, /missing\tdevice 1/);
    });
  }
});
