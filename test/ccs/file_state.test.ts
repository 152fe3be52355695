import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeForkState, encodeForkState } from "../../src/ccs/file_state.ts";

const hash = "7c0445b5eecc40b31a3aa3cc01adaa6ba964296297c7a940f869960fcdcfde1f";

test("fork state: 49 bytes that give back the hash, size and mtime, before 1970 too", () => {
  for (const [size, mtimeNs] of [[73943, "1794824260123456789"], [0, "-1000000001"]] as const) {
    const b = encodeForkState(hash, size, mtimeNs);
    assert.equal(b.length, 49);
    assert.deepEqual(decodeForkState(b), { hash, size, mtimeNs });
  }
});

test("fork state: only a BLAKE3 hex hash is written", () => {
  assert.throws(() => encodeForkState("abc", 1, "1"), /not a BLAKE3 hash/);
  assert.throws(() => encodeForkState("Z".repeat(64), 1, "1"), /not a BLAKE3 hash/);
});

test("fork state: the JSON of earlier versions is still read; anything else is not", () => {
  const old = new TextEncoder().encode(
    JSON.stringify({ h: hash, s: 12, m: "1700000000000000000" }),
  );
  assert.deepEqual(decodeForkState(old), { hash, size: 12, mtimeNs: "1700000000000000000" });
  assert.equal(decodeForkState(new TextEncoder().encode('{"h":1}')), undefined);
  assert.equal(decodeForkState(new Uint8Array([2, ...new Uint8Array(48)])), undefined);
  assert.equal(decodeForkState(new Uint8Array(0)), undefined);
});
