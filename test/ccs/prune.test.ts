import assert from "node:assert/strict";
import { test } from "node:test";
import { planPrune } from "../../src/ccs/prune.ts";

const healthy = { rootExists: true, localFiles: 10, cloudFiles: 2010, walkErrors: 0 };
const list = (n: number) => Array.from({ length: n }, (_, i) => `f${i}`);

test("planPrune() sends at most the collar and leaves the rest pending", () => {
  const p = planPrune(list(2000), healthy, { collar: 1500 });
  assert.equal(p.now.length, 1500);
  assert.equal(p.pending, 500);
  assert.equal(p.now[0], "f0");
});

test("planPrune() with noMaxDelete sends all", () => {
  const p = planPrune(list(2000), healthy, { collar: 1500, noMaxDelete: true });
  assert.equal(p.now.length, 2000);
  assert.equal(p.pending, 0);
});

test("planPrune() blocks every delete for a missing, empty or unreadable source", () => {
  for (
    const h of [
      { ...healthy, rootExists: false },
      { ...healthy, localFiles: 0 },
      { ...healthy, walkErrors: 3 },
    ]
  ) {
    const p = planPrune(list(5), h, { noMaxDelete: true });
    assert.equal(p.now.length, 0);
    assert.equal(p.pending, 5);
    assert.ok(p.blocked);
  }
});

test("planPrune() skips on request", () => {
  const p = planPrune(list(5), healthy, { skipDeletes: true });
  assert.deepEqual([p.now.length, p.pending, p.skipped], [0, 5, true]);
});
