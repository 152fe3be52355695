import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { test } from "node:test";

const script = resolve(import.meta.dirname ?? ".", "../../scripts/fuzz_pack.mjs");

test("fuzz_pack.mjs: mutated packs are rejected cleanly (bounded 5 s run)", async () => {
  const r = await new Promise<{ code: number; out: string }>((res) => {
    execFile(process.execPath, [script, "--seconds", "5"], (err, stdout, stderr) => {
      res({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr });
    });
  });
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /no crash, no hang/);
  const cases = Number(/(\d+) cases/.exec(r.out)?.[1]);
  assert.ok(cases > 100, `only ${cases} cases ran`);
});
