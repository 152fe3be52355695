import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { PackHeader } from "../../src/ccs/pack_format.ts";
import { baseHeader, PackBuilder } from "../../src/ccs/pack_writer.ts";
import { PackRejectedError } from "../../src/core/errors.ts";
import { native } from "../../src/native/mod.ts";
import type { RemoteFile } from "../../src/network/client.ts";
import { restoreFiles } from "../../src/network/restore.ts";
import { useCncopd } from "../helpers/cncopd.ts";
import { addHeader } from "../helpers/packs.ts";

const net = useCncopd("cncop-multi-");

/** An add in job 5, its mtime told apart by `i`. */
function header(path: string, body: Uint8Array, i: number): PackHeader {
  const mtimeNs = String(1_700_000_000_000_000_000n + BigInt(i));
  return addHeader("5", path, body, { mtimeNs, mode: 0o640 });
}

async function listing(): Promise<RemoteFile[]> {
  const out: RemoteFile[] = [];
  for await (const f of net.client.peek("5")) out.push(f);
  return out;
}

describe("packs of many entries on a real cncopd", () => {
  const files = new Map<string, Buffer>();

  test("300 adds in one pack apply in one go, with a version per entry, once", async () => {
    const b = await PackBuilder.create(join(net.work, "adds.pack"));
    for (let i = 0; i < 300; i++) {
      // Every tenth file shares its content with another: the blob is stored once.
      const body = i % 10 === 0
        ? Buffer.from("same content\n")
        : i % 3 === 0
        ? randomBytes(5000)
        : Buffer.from(`file ${i}\n`.repeat(i));
      const path = `dir${i % 7}/f${i}.txt`;
      files.set(path, body);
      await b.add(header(path, body, i), body);
    }
    const w = await b.finish();
    assert.equal(w.headers.length, 300);
    const r = await net.client.uploadPack("5", w.path, { chunkSize: 64 * 1024 });
    assert.equal(r.result.entries.length, 300);
    assert.equal(r.result.changed, 300);
    assert.ok(r.result.entries.every((e) => e.kind === "add" && (e.version ?? 0) > 0));
    assert.equal(new Set(r.result.entries.map((e) => e.version)).size, 300);

    const again = await net.client.uploadPack("5", w.path);
    assert.deepEqual(again.result, r.result, "the same pack applies once");
    assert.equal((await listing()).length, 300);

    const out = join(net.work, "restore1");
    await restoreFiles({ client: net.client, job: "5", to: out });
    for (const [path, body] of files) {
      assert.deepEqual(await readFile(join(out, ...path.split("/"))), body, path);
    }
  });

  test("moves, deletes and adds share a pack and apply in order", async () => {
    const b = await PackBuilder.create(join(net.work, "mixed.pack"));
    const move = baseHeader("move", { job: "5", path: "dir0" });
    Object.assign(move, { newPath: "moved0", folder: true });
    await b.add(move);
    await b.add(Object.assign(baseHeader("delete", { job: "5", path: "dir1" }), { folder: true }));
    const body = Buffer.from("new in moved0\n");
    await b.add(header("moved0/new.txt", body, 999), body);
    const r = await net.client.uploadPack("5", (await b.finish()).path);
    assert.deepEqual(r.result.entries.map((e) => e.kind), ["move", "delete", "add"]);
    const paths = (await listing()).map((f) => f.path);
    assert.ok(paths.includes("moved0/new.txt"));
    assert.ok(!paths.some((p) => p.startsWith("dir0/") || p.startsWith("dir1/")));
    const moved = [...files.keys()].filter((p) => p.startsWith("dir0/"));
    for (const p of moved) assert.ok(paths.includes(p.replace(/^dir0\//, "moved0/")), p);
  });

  test("entries apply in pack order: an add then a folder delete, and the reverse", async () => {
    const body = Buffer.from("ordered\n");
    const del = () =>
      Object.assign(baseHeader("delete", { job: "5", path: "ord" }), { folder: true });
    const addThenDelete = await PackBuilder.create(join(net.work, "order1.pack"));
    await addThenDelete.add(header("ord/a.txt", body, 1), body);
    await addThenDelete.add(del());
    await net.client.uploadPack("5", (await addThenDelete.finish()).path);
    assert.ok(!(await listing()).some((f) => f.path === "ord/a.txt"), "deleted after it was added");
    const deleteThenAdd = await PackBuilder.create(join(net.work, "order2.pack"));
    await deleteThenAdd.add(del());
    await deleteThenAdd.add(header("ord/a.txt", body, 2), body);
    await net.client.uploadPack("5", (await deleteThenAdd.finish()).path);
    assert.ok((await listing()).some((f) => f.path === "ord/a.txt"), "added after the delete");
  });

  test("one bad entry rejects the whole pack and changes nothing", async () => {
    const before = await listing();
    const b = await PackBuilder.create(join(net.work, "bad.pack"));
    const good = Buffer.from("good\n");
    await b.add(header("good.txt", good, 1), good);
    const bad = Buffer.from("bad\n");
    await b.add({ ...header("bad.txt", bad, 2), hash: native.blake3(good) }, bad);
    await assert.rejects(
      net.client.uploadPack("5", (await b.finish()).path),
      (e: unknown) => e instanceof PackRejectedError && /hash/.test(e.message),
    );
    assert.deepEqual(await listing(), before);
    assert.deepEqual(await readdir(join(net.d.dataDir, "tmp")), [], "no temp file left behind");
  });

  test("the listing's tag: 304 while it holds, raised by each applied pack, not by a rejected one", async () => {
    const tagged = async (ifTag?: string) => {
      let tag: string | undefined;
      let unchanged = false;
      const files: RemoteFile[] = [];
      for await (
        const b of net.client.peekBatches("5", {
          ifTag,
          onTag: (t, u) => [tag, unchanged] = [t, u],
        })
      ) files.push(...b);
      return { tag, unchanged, files };
    };
    const first = await tagged();
    assert.ok(first.tag && first.files.length > 0);
    const again = await tagged(first.tag);
    assert.deepEqual([again.unchanged, again.tag, again.files.length], [true, first.tag, 0]);
    // A part of the tree or a past time has no tag: the whole current listing only.
    let prefixTag: string | undefined = "none";
    for await (
      const _ of net.client.peekBatches("5", {
        prefix: "moved0",
        onTag: (t) => prefixTag = t,
      })
    ) {
      // drained
    }
    assert.equal(prefixTag, undefined);

    // A folder move: the result names the new versions, consecutive in old-path order, and
    // the tags the pack was applied on and made.
    const from = first.files.filter((f) => f.path.startsWith("moved0/"));
    assert.ok(from.length > 2);
    const b = await PackBuilder.create(join(net.work, "tagmove.pack"));
    await b.add(Object.assign(baseHeader("move", { job: "5", path: "moved0" }), {
      newPath: "moved1",
      folder: true,
    }));
    const r = await net.client.uploadPack("5", (await b.finish()).path);
    assert.equal(r.result.listing?.before, first.tag);
    const [lo, hi] = r.result.entries[0]!.versions!;
    assert.equal(hi - lo + 1, from.length);
    const now = await tagged(first.tag);
    assert.equal(now.unchanged, false);
    assert.equal(now.tag, r.result.listing?.after);
    const moved = new Map(now.files.map((f) => [f.path, f.version]));
    from.forEach((f, i) => assert.equal(moved.get(f.path.replace(/^moved0\//, "moved1/")), lo + i));

    // A rejected pack changes nothing, its tag neither.
    const bad = await PackBuilder.create(join(net.work, "tagbad.pack"));
    await bad.add(Object.assign(baseHeader("move", { job: "5", path: "no-such-folder" }), {
      newPath: "x",
      folder: true,
    }));
    await assert.rejects(net.client.uploadPack("5", (await bad.finish()).path));
    assert.equal((await tagged(now.tag)).unchanged, true);
  });
});
