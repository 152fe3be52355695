import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { defaultNativePath } from "../../src/native/load.ts";

const mod = fileURLToPath(new URL("../../src/native/mod.ts", import.meta.url));
const script = `const m = await import(${
  JSON.stringify(mod)
}); console.log(JSON.stringify({ s: m.nativeStatus(), i: m.native.implementation }));`;

function run(cmd: string, args: string[], env: Record<string, string>) {
  // Start from the environment without the loader's own switches, so an outer
  // CNCOP_NATIVE=0 run of the suite does not leak in.
  const base = { ...process.env };
  delete base["CNCOP_NATIVE"];
  delete base["CNCOP_NATIVE_PATH"];
  const r = spawnSync(cmd, args, { encoding: "utf8", env: { ...base, ...env } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as {
    s: { loaded: boolean; reason?: string; path?: string };
    i: string;
  };
}

test("nativeStatus(): CNCOP_NATIVE=0 forces the portable core and says why", () => {
  const r = run(process.execPath, ["--input-type=module", "-e", script], { CNCOP_NATIVE: "0" });
  assert.deepEqual(r, {
    s: { loaded: false, reason: "disabled by CNCOP_NATIVE=0" },
    i: "portable",
  });
});

test("nativeStatus(): a missing addon falls back with the path and the fix", () => {
  const r = run(process.execPath, ["--input-type=module", "-e", script], {
    CNCOP_NATIVE_PATH: "/nonexistent/cncop_native.node",
  });
  assert.equal(r.i, "portable");
  assert.equal(r.s.loaded, false);
  assert.match(r.s.reason!, /no addon at \/nonexistent.*build:native/);
});

test("nativeStatus(): a file that is not an addon falls back with the loader's error", () => {
  const r = run(process.execPath, ["--input-type=module", "-e", script], {
    CNCOP_NATIVE_PATH: mod,
  });
  assert.equal(r.i, "portable");
  assert.match(r.s.reason!, /dlopen: /);
});

const built = existsSync(defaultNativePath());
test("nativeStatus(): the built addon loads under Node and Deno", {
  skip: built ? false : "addon not built (npm run build:native)",
}, () => {
  const node = run(process.execPath, ["--input-type=module", "-e", script], {});
  assert.deepEqual(node, { s: { loaded: true, path: defaultNativePath() }, i: "native" });
  const deno = fileURLToPath(new URL("../../node_modules/.bin/deno", import.meta.url));
  const env = { ...process.env };
  delete env["CNCOP_NATIVE"];
  delete env["CNCOP_NATIVE_PATH"];
  const r = spawnSync(deno, ["eval", script], { encoding: "utf8", env });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout.trim()), node);
});
