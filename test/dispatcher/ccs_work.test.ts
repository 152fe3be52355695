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
  const add = (job: number, session: string, ready: boolean) => {
    const [id] = w.tx(() => w.addItems(job, session, [{ kind: "ADD", path: "f" }]));
    if (ready) w.markReady(id!, `/p/${id}`, 1, null);
    return id!;
  };
  add(1, "s1", false);
  add(1, "s0", true);
  add(2, "s1", true);
  assert.equal(sw.hasReady(), false, "planned, another session, another job");
  const claimed = add(1, "s1", true);
  w.claim(1, 111, 10);
  assert.equal(sw.hasReady(), false, "claimed by a dequeuer: no longer waiting");
  w.unclaim([claimed]);
  assert.equal(sw.hasReady(), true);
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
