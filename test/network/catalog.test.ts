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
