import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { openWorkDb } from "../../src/ccs/work_queue.ts";
import { SessionWork } from "../../src/dispatcher/ccs_work.ts";
import { tempDir } from "../helpers/tmp.ts";

test("SessionWork.hasReady(): a ready item of this job and session, read-only", () => {
  const path = join(tempDir(), "work.db");
  const sw = new SessionWork(path, 1, "s1");
  assert.equal(sw.hasReady(), false, "no work.db yet");
  const w = openWorkDb(path);
  const add = (job: number, session: string, state: string) =>
    w.db.prepare(
      `INSERT INTO items (job, session, kind, stage, state, path, created)
       VALUES (?, ?, 'ADD', 2, ?, 'f', 'now')`,
    ).run(job, session, state);
  add(1, "s1", "planned");
  add(1, "s0", "ready");
  add(2, "s1", "ready");
  assert.equal(sw.hasReady(), false, "planned, another session, another job");
  add(1, "s1", "ready");
  assert.equal(sw.hasReady(), true);
  w.close();
  sw.close();
});

test("SessionWork.hasReady(): an unreadable work.db says yes (never leave packs unsent)", () => {
  const path = join(tempDir(), "work.db");
  writeFileSync(path, "not a database, not at all, just text".repeat(100));
  const sw = new SessionWork(path, 1, "s1");
  assert.equal(sw.hasReady(), true);
  sw.close();
});
