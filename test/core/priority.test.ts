import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";

const priorityTs = new URL("../../src/core/priority.ts", import.meta.url).href;

/**
 * Runs lowerPriority(by) twice in a child (a priority once lowered stays so) that has started
 * a worker thread and the libuv pool first, and returns what it reports: the nice values it
 * returned and, on Linux, the nice value of each of its threads after each call.
 */
function lowerInChild(
  first: number,
  second: number,
): { base: number; got: number[]; threads: number[][] } {
  const code = `
    import { readdirSync, readFileSync } from "node:fs";
    import { Worker } from "node:worker_threads";
    import { getPriority } from "node:os";
    import { lowerPriority } from ${JSON.stringify(priorityTs)};
    await new Promise((r) => new Worker("setTimeout(() => {}, 2000)", { eval: true }).once("online", r));
    await new Promise((r) => import("node:fs").then((fs) => fs.stat(".", r)));
    const threads = () => process.platform !== "linux" ? [] :
      readdirSync("/proc/self/task").map((t) =>
        Number(readFileSync("/proc/self/task/" + t + "/stat", "utf8").split(") ")[1].split(" ")[16]));
    const base = getPriority();
    const got = [lowerPriority(${first})];
    const t1 = threads();
    got.push(lowerPriority(${second}));
    console.log(JSON.stringify({ base, got, threads: [t1, threads()] }));
    process.exit(0);`;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", code], {
    encoding: "utf8",
  });
  return JSON.parse(out);
}

// The values below assume the tests run at nice 0; a runner that is itself niced skips them.
test("lowerPriority lowers every thread of the process, and never raises one", (t) => {
  const r = lowerInChild(4, 3);
  if (r.base !== 0) return t.skip(`the tests run at nice ${r.base}, not 0`);
  assert.deepEqual(r.got, [4, 7]);
  if (process.platform === "linux") {
    // Main thread, the worker, V8's and libuv's helpers: all of them, not the caller only.
    assert.ok(r.threads[0]!.length >= 4, `threads: ${r.threads[0]}`);
    assert.deepEqual(new Set(r.threads[0]), new Set([4]));
    assert.deepEqual(new Set(r.threads[1]), new Set([7]));
  }
});

test("lowerPriority stops at the lowest priority, and 0 changes nothing", (t) => {
  const r = lowerInChild(15, 15);
  if (r.base !== 0) return t.skip(`the tests run at nice ${r.base}, not 0`);
  assert.deepEqual(r.got, [15, 19]);
  assert.deepEqual(lowerInChild(0, 2).got, [0, 2]);
});
