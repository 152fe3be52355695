import assert from "node:assert/strict";
import { test } from "node:test";
import { releaseMemory } from "../../src/core/memory.ts";

test("releaseMemory trims the allocator at most once a second, not at every batch", async () => {
  let trims = 0;
  const core = {
    trimMemory: () => {
      trims++;
      return true;
    },
  };
  releaseMemory(core);
  assert.equal(trims, 1, "the first call trims");
  for (let i = 0; i < 50; i++) releaseMemory(core);
  assert.equal(trims, 1, "batches within the second do not");
  await new Promise((r) => setTimeout(r, 1100));
  releaseMemory(core);
  assert.equal(trims, 2, "a second later it trims again");
});
