import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { NODE_FLAGS } from "../../src/core/runtime_flags.ts";
import { mainScript, selfLaunch } from "../../src/dispatcher/self_exec.ts";

test("a program started from the sources runs with the executable's V8 flags", () => {
  const l = selfLaunch("version", ["--json"]);
  assert.equal(l.file, process.execPath);
  assert.deepEqual(l.args, [...NODE_FLAGS, mainScript, "version", "--json"]);
  // Node accepts the flags (an unknown V8 flag would stop it at start).
  const r = spawnSync(process.execPath, [...NODE_FLAGS, "-e", "console.log(process.execArgv)"], {
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /max-semi-space-size/);
});
