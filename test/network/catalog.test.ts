import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Catalog } from "../../src/network/catalog.ts";

test("Catalog.tree() pages through versions, at a time and under a prefix", async () => {
  const dir = await mkdtemp(join(tmpdir(), "cncop-cat-"));
  const cat = new Catalog(join(dir, "catalog.db"));
  try {
    const dev = cat.addDevice("d", "h");
    const job = cat.ensureJob(dev, "7");
    const v = (path: string) => ({
      path,
      size: 1,
      mtimeNs: "1",
      mode: 0o644,
      hash: "a".repeat(64),
    });
    const paths = Array.from({ length: 25 }, (_, i) => `d/f${String(i).padStart(2, "0")}`);
    cat.tx(() => paths.forEach((p) => cat.putVersion(job.id, v(p), cat.now())));
    const t1 = cat.now();
    cat.tx(() => {
      const at = cat.now();
      cat.endVersion(cat.current(job.id, "d/f03")!.id, at, true);
      cat.putVersion(job.id, v("d/f05"), at);
      cat.putVersion(job.id, v("dx"), at);
    });
    const now = [...cat.tree(job.id, { page: 10 })].map((r) => r.path);
    assert.deepEqual(now, [...paths.filter((p) => p !== "d/f03"), "dx"]);
    const then = [...cat.tree(job.id, { page: 7, at: t1 })].map((r) => r.path);
    assert.deepEqual(then, paths);
    assert.deepEqual(
      [...cat.tree(job.id, { prefix: "d", page: 4 })].length,
      24,
      "dx is not under d/",
    );
    assert.equal(cat.versionsOf(job.id, "d/f05").length, 2);
  } finally {
    cat.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test("Catalog.moveFolder() moves what is current under a folder, into a part of its own name too", async () => {
  const dir = await mkdtemp(join(tmpdir(), "cncop-cat-"));
  const cat = new Catalog(join(dir, "catalog.db"));
  try {
    const dev = cat.addDevice("d", "h");
    const job = cat.ensureJob(dev, "7");
    const v = (path: string, hash: string) => ({ path, size: 1, mtimeNs: "1", mode: 0o644, hash });
    cat.tx(() => {
      const at = cat.now();
      for (const [p, h] of [["a/b/b/y", "B"], ["a/b/x", "X"], ["a/b/y", "Y"], ["a/y", "old"]]) {
        cat.putVersion(job.id, v(p!, h!), at);
      }
      cat.putVersion(job.id, v("a/bb", "stays"), at); // beside the folder, not in it
    });
    const before = cat.listingTag(job.id);
    const ids = cat.tx(() => cat.moveFolder(job.id, "a/b", "a", cat.now()));
    assert.ok(ids);
    assert.equal(ids[1] - ids[0] + 1, 3);
    const now = [...cat.tree(job.id)];
    assert.ok(now.some((r) => r.path === "a/bb" && r.hash === "stays"));
    // Row by row, in old-path order: a/b/b/y -> a/b/y, a/b/x -> a/x, a/b/y -> a/y.
    assert.deepEqual(
      now.filter((r) => r.path !== "a/bb").map((r) => `${r.path}=${r.hash}#${r.id - ids[0]}`),
      ["a/b/y=B#0", "a/x=X#1", "a/y=Y#2"],
    );
    // The moved rows ended as deleted, the replaced a/y as replaced.
    const old = cat.versionsOf(job.id, "a/y").find((r) => r.hash === "old")!;
    assert.equal(old.deleted, 0);
    assert.ok(old.ended_at);
    assert.ok(cat.versionsOf(job.id, "a/b/x").every((r) => r.deleted === 1 && r.ended_at));
    assert.equal(cat.listingTag(job.id), before, "the generation is the pack's business");
    assert.equal(cat.tx(() => cat.moveFolder(job.id, "no/such", "x", cat.now())), undefined);
    // A name JS counts in UTF-16 units and SQLite in characters.
    cat.tx(() => cat.putVersion(job.id, v("e/😀/f", "E"), cat.now()));
    cat.tx(() => cat.moveFolder(job.id, "e/😀", "y", cat.now()));
    assert.equal(cat.current(job.id, "y/f")?.hash, "E");
    assert.deepEqual(
      [...cat.tree(job.id, { prefix: "y" })].map((r) => r.path),
      ["y/f"],
      "a prefix listing counts the same way",
    );
  } finally {
    cat.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test("Catalog.referencedAmong() answers per device, ended versions included", async () => {
  const dir = await mkdtemp(join(tmpdir(), "cncop-cat-"));
  const cat = new Catalog(join(dir, "catalog.db"));
  try {
    const a = cat.ensureJob(cat.addDevice("a", "ha"), "1");
    const b = cat.ensureJob(cat.addDevice("b", "hb"), "1");
    const v = (path: string, hash: string) => ({ path, size: 1, mtimeNs: "1", mode: 0o644, hash });
    cat.tx(() => {
      cat.putVersion(a.id, v("x", "h1"), cat.now());
      cat.putVersion(a.id, v("x", "h2"), cat.now()); // h1 ended, still kept
      cat.putVersion(b.id, v("y", "h3"), cat.now());
    });
    const used = cat.referencedAmong([
      { device: a.device_id, hash: "h1" },
      { device: a.device_id, hash: "h2" },
      { device: a.device_id, hash: "h3" }, // device b's content, not a's
      { device: b.device_id, hash: "h3" },
      { device: b.device_id, hash: "h4" },
    ]);
    assert.deepEqual(
      [...used].sort(),
      [`${a.device_id}:h1`, `${a.device_id}:h2`, `${b.device_id}:h3`].sort(),
    );
    assert.equal(cat.referencedAmong([]).size, 0);
  } finally {
    cat.close();
    await rm(dir, { recursive: true, force: true });
  }
});
