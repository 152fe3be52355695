import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { enqueuerActive, parseSize } from "../../src/ccs/dq.ts";
import { openWorkDb, processStart } from "../../src/ccs/work_queue.ts";
import type { AppContext } from "../../src/core/context.ts";
import { acquireLock, jobLockPath } from "../../src/core/lock.ts";
import { tempHome } from "../helpers/tmp.ts";

function setup() {
  const paths = tempHome();
  const ctx = { paths } as AppContext;
  const work = openWorkDb(join(paths.work, "work.db"));
  return { ctx, work, paths };
}

test("enqueuerActive() is true while an enqueuer holds the job lock, session or not", async () => {
  const { ctx, work, paths } = setup();
  const lock = await acquireLock(jobLockPath(paths, 3), { mode: "try", what: "job 3" });
  assert.equal(await enqueuerActive(ctx, work, 3, undefined, Date.now(), 0), true);
  lock.release();
  assert.equal(await enqueuerActive(ctx, work, 3, undefined, Date.now(), 60_000), false);
  work.close();
});

test("enqueuerActive() waits the grace period for the session's enqueuer to appear", async () => {
  const { ctx, work } = setup();
  assert.equal(await enqueuerActive(ctx, work, 4, "S", Date.now(), 60_000), true);
  assert.equal(await enqueuerActive(ctx, work, 4, "S", Date.now() - 61_000, 60_000), false);
  work.close();
});

test("enqueuerActive() follows this attempt's run row: running, then done", async () => {
  const { ctx, work } = setup();
  // startRun records this process (same parent and start as the "dequeuer" here).
  work.startRun("S", 5);
  assert.equal(await enqueuerActive(ctx, work, 5, "S", Date.now() - 999_999, 1), true);
  work.endRun("S", 5, true);
  assert.equal(await enqueuerActive(ctx, work, 5, "S", Date.now(), 60_000), false);
  work.close();
});

test("enqueuerActive() ignores the row of an earlier attempt of the same session", async () => {
  const { ctx, work } = setup();
  work.startRun("S", 6);
  work.endRun("S", 6, false);
  work.db.prepare("UPDATE runs SET proc_start = ? WHERE job = 6").run(processStart() - 60_000);
  // Not this attempt's row: within the grace period the dequeuer keeps waiting for its own.
  assert.equal(await enqueuerActive(ctx, work, 6, "S", Date.now(), 60_000), true);
  // A dead enqueuer of this attempt ends the wait.
  work.db.prepare(
    "UPDATE runs SET proc_start = ?, state = 'running', pid = 999999999 WHERE job = 6",
  )
    .run(processStart());
  assert.equal(await enqueuerActive(ctx, work, 6, "S", Date.now(), 60_000), false);
  work.close();
});

test("parseSize() reads --chunksize values", () => {
  assert.equal(parseSize("10M"), 10 * 1024 * 1024);
  assert.equal(parseSize("512k"), 512 * 1024);
  assert.equal(parseSize("10MB"), 10 * 1024 * 1024);
  assert.equal(parseSize("4096"), 4096);
  assert.throws(() => parseSize("ten"), /--chunksize/);
});
