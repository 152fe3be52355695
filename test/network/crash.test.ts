import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { packAdd } from "../../src/ccs/pack_writer.ts";
import { native } from "../../src/native/mod.ts";
import { TransientError } from "../../src/core/errors.ts";
import { NetworkClient, type PackResult } from "../../src/network/client.ts";
import { type CncopdHandle, startCncopd } from "../helpers/cncopd.ts";

let work: string;
let d: CncopdHandle;
before(async () => {
  work = await mkdtemp(join(tmpdir(), "cncop-crash-"));
  d = await startCncopd();
});
after(async () => {
  await d.cleanup();
  await rm(work, { recursive: true, force: true });
});

async function readAll(s: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

test("kill -9 during 50 uploads: completed uploads intact, no partial version, check clean", async () => {
  const N = 50;
  const uploads: { path: string; pack: string; hash: string; file: string }[] = [];
  for (let i = 0; i < N; i++) {
    const file = join(work, `src${i}`);
    await writeFile(file, randomBytes(20_000 + Math.floor(Math.random() * 1_500_000)));
    const path = `dir${i % 3}/f${i % 20}`; // some paths get several versions
    const p = await packAdd(join(work, `u${i}.pack`), {
      job: "1",
      path,
      source: file,
      compression: "none",
    });
    uploads.push({ path, pack: p.path, hash: await native.blake3File(file), file });
  }

  let up: Promise<void> = Promise.resolve();
  let markUp: () => void = () => {};
  let done = false;
  const completed: PackResult[] = [];
  let kills = 0;

  const uploader = (async () => {
    for (let i = 0; i < N; i++) {
      for (;;) {
        const client = new NetworkClient({ url: d.url, token: d.token, retries: 2, backoffMs: 20 });
        try {
          const r = await client.uploadPack("1", uploads[i]!.pack, { chunkSize: 256 * 1024 });
          completed.push(r.result);
          break;
        } catch (err) {
          if (!(err instanceof TransientError)) throw err;
          await up; // the server is down: wait for the restart, then resume
        } finally {
          client.close();
        }
      }
    }
    done = true;
  })();

  const killer = (async () => {
    while (!done) {
      await delay(30 + Math.random() * 300);
      if (done) break;
      up = new Promise((res) => (markUp = res));
      await d.kill();
      kills++;
      // Between crash and restart, the data directory is already consistent.
      const c = await d.admin(["check"]);
      assert.equal(c.code, 0, `check after kill ${kills}: ${c.stdout}`);
      await d.restart();
      markUp();
    }
  })();
  await Promise.all([uploader, killer]);
  assert.ok(kills >= 3, `the server was killed ${kills} times`);
  assert.equal(completed.length, N);

  const client = new NetworkClient({ url: d.url, token: d.token });
  try {
    // Every completed upload is one version with the uploaded content, and no version
    // was applied twice.
    for (let i = 0; i < N; i++) {
      const v = await client.version("1", completed[i]!.version!);
      assert.equal(v.path, uploads[i]!.path);
      assert.equal(v.hash, uploads[i]!.hash);
      const content = await readAll(await client.openContent("1", v.version));
      assert.deepEqual(content, await readFile(uploads[i]!.file), `content of upload ${i}`);
    }
    const seen = new Map<string, number>();
    for (const u of uploads) seen.set(u.path, (seen.get(u.path) ?? 0) + 1);
    for (const [path, n] of seen) assert.equal((await client.versions("1", path)).length, n, path);
    // The current tree holds each path's last upload.
    const last = new Map(uploads.map((u) => [u.path, u.hash]));
    const files: Record<string, string> = {};
    for await (const f of client.peek("1")) files[f.path] = f.hash;
    assert.deepEqual(files, Object.fromEntries(last));
  } finally {
    client.close();
  }
  const c = await d.admin(["check"]);
  assert.equal(c.code, 0, c.stdout);
  assert.match(c.stdout, / 0 problems/);
});
