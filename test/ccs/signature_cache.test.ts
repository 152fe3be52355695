import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import {
  pruneSignatures,
  pruneSignaturesDaily,
  sigDir,
  sigPath,
} from "../../src/ccs/signature_cache.ts";
import { openWorkDb } from "../../src/ccs/work_queue.ts";
import { tempDir } from "../helpers/tmp.ts";

const h = (c: string) => c.repeat(64);

test("pruneSignatures keeps what a job still refers to and removes the rest", () => {
  const work = tempDir();
  const w = openWorkDb(join(work, "work.db"));
  try {
    mkdirSync(sigDir(work), { recursive: true });
    for (const c of "abcdefg") writeFileSync(sigPath(work, h(c)), `sig ${c}`);
    const put = (sql: string, ...v: (string | number)[]) => w.db.prepare(sql).run(...v);
    // a: an uploaded file of job 1; b: a file of job 2's last cloud peek; c: a queued item's
    // content; d: a queued update's base. e, f, g: nothing refers to them any more.
    put(
      `INSERT INTO file_cache (job, path, size, mtime_ns, ino, dev, hash, version)
       VALUES (1, 'x', 1, '1', NULL, NULL, ?, 1)`,
      h("a"),
    );
    put(
      `INSERT INTO cloud_files (job, path, size, mtime_ns, mode, hash, version)
       VALUES (2, 'y', 1, '1', 420, ?, 2)`,
      h("b"),
    );
    w.tx(() =>
      w.addItems(1, "s", [
        { kind: "ADD", path: "n", size: 1, hash: h("c") },
        { kind: "UPDATE", path: "u", size: 1, baseVersion: 3, baseHash: h("d") },
      ])
    );
    // A fetch's temp file: removed once it is a day old, a fresh one stays.
    const oldTmp = join(sigDir(work), `${h("e")}.sig.tmp-123`);
    const newTmp = join(sigDir(work), `${h("f")}.sig.tmp-456`);
    writeFileSync(oldTmp, "x");
    writeFileSync(newTmp, "x");
    const t = Date.now() / 1000 - 2 * 86400;
    utimesSync(oldTmp, t, t);

    const r = pruneSignatures(work, w.db);
    assert.deepEqual(r, { kept: 4, removed: 3, bytes: 15 });
    assert.deepEqual(readdirSync(sigDir(work)).sort(), [
      `${h("a")}.sig`,
      `${h("b")}.sig`,
      `${h("c")}.sig`,
      `${h("d")}.sig`,
      `${h("f")}.sig.tmp-456`,
    ]);
    // Idempotent, and works again on the same connection (its temp table is reused).
    assert.deepEqual(pruneSignatures(work, w.db), { kept: 4, removed: 0, bytes: 0 });
    // The uploaded file changed: its old content's signature goes.
    put("UPDATE file_cache SET hash = ? WHERE path = 'x'", h("z"));
    assert.equal(pruneSignatures(work, w.db).removed, 1);
    assert.ok(!existsSync(sigPath(work, h("a"))));
  } finally {
    w.close();
  }
});

test("pruneSignatures without a cache directory does nothing", () => {
  const work = tempDir();
  const w = openWorkDb(join(work, "work.db"));
  try {
    assert.deepEqual(pruneSignatures(work, w.db), { kept: 0, removed: 0, bytes: 0 });
  } finally {
    w.close();
  }
});

test("pruneSignaturesDaily() prunes once a day", () => {
  const work = tempDir();
  const w = openWorkDb(join(work, "work.db"));
  try {
    const day = 86400_000;
    const t0 = Date.now();
    assert.ok(pruneSignaturesDaily(work, w.db, { now: t0 }), "first time: due");
    mkdirSync(sigDir(work), { recursive: true });
    writeFileSync(sigPath(work, "ab".repeat(32)), "sig");
    assert.equal(pruneSignaturesDaily(work, w.db, { now: t0 + day - 1000 }), undefined);
    assert.ok(existsSync(sigPath(work, "ab".repeat(32))), "kept until the day is over");
    assert.equal(pruneSignaturesDaily(work, w.db, { now: t0 + day + 1000 })?.removed, 1);
    assert.ok(pruneSignaturesDaily(work, w.db, { now: t0 - day }), "a clock set back");
    assert.ok(pruneSignaturesDaily(work, w.db, { now: t0 - day + 1000, force: true }), "forced");
  } finally {
    w.close();
  }
});
