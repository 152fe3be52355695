import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { pathToFileURL } from "node:url";
import {
  codeCachePath,
  programKey,
  removeStaleCaches,
  seal,
  unseal,
} from "../../src/cli/sea_loader.ts";

const dir = mkdtempSync(join(tmpdir(), "cncop-loader-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("programKey: the name started under, else cncop's first argument", () => {
  assert.equal(programKey("/opt/cncop/Bin/backupagentnq", ["1"]), "backupagentnq");
  assert.equal(programKey("C:\\cncop\\Bin\\CNCOPAGENT.EXE", []), "cncopagent");
  assert.equal(programKey("/usr/bin/cncop", ["backupagentdq", "7"]), "backupagentdq");
  assert.equal(programKey("cncop", ["--help"]), "cncop");
  assert.equal(programKey("cncop", ["../x"]), "cncop");
  assert.equal(programKey("we ird", []), "we_ird");
});

test("codeCachePath: in the private cache directory, per bundle, Node and program; none when off", () => {
  const env = { CNCOP_CACHE_DIR: join(dir, "cache") };
  const p = codeCachePath("ab".repeat(32), "cncopagent", env)!;
  assert.equal(
    p,
    join(dir, "cache", `code-${"ab".repeat(8)}-${process.version}-${process.arch}-cncopagent.bin`),
  );
  assert.ok(existsSync(join(dir, "cache")), "made, private");
  assert.equal(codeCachePath("ab".repeat(32), "x", { ...env, CNCOP_CODE_CACHE: "0" }), undefined);
});

test("runBundle: the first run saves a cache at exit, the next one uses it, a damaged one is made again", () => {
  const cache = join(dir, "code.bin");
  const loader = pathToFileURL(join(import.meta.dirname, "../../src/cli/sea_loader.ts")).href;
  const run = () => {
    const script = `
      import { runBundle } from ${JSON.stringify(loader)};
      import { createRequire } from "node:module";
      const source = "module.exports.answer = require('node:path').basename('/a/b') + exports.n;";
      const mod = { exports: { n: 42 } };
      const how = runBundle(source, { require: createRequire(import.meta.url), module: mod,
        exports: mod.exports, __filename: "x", __dirname: "." }, ${JSON.stringify(cache)});
      console.log(how, mod.exports.answer);`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim();
  };
  assert.equal(run(), "miss b42");
  assert.ok(existsSync(cache), "saved at exit");
  assert.equal(run(), "hit b42");
  writeFileSync(cache, "not a code cache");
  assert.equal(run(), "miss b42", "refused, made again");
  assert.equal(run(), "hit b42");
  // A body damaged behind an intact V8 header: caught by the SHA-256 before V8 runs it.
  const bytes = readFileSync(cache);
  bytes[bytes.length - 8]! ^= 0xff;
  writeFileSync(cache, bytes);
  assert.equal(run(), "miss b42", "damaged body, made again");
  assert.equal(run(), "hit b42");
});

test("seal/unseal: the bytes back only when their SHA-256 matches", () => {
  const data = new Uint8Array([1, 2, 3, 4]);
  assert.deepEqual([...unseal(seal(data))!], [1, 2, 3, 4]);
  const bad = seal(data);
  bad[33]! ^= 1;
  assert.equal(unseal(bad), undefined);
  assert.equal(unseal(Buffer.alloc(10)), undefined);
});

test("a first run keeps the program's exit status while it saves the cache", () => {
  const cache = join(dir, "code-exit.bin");
  const loader = pathToFileURL(join(import.meta.dirname, "../../src/cli/sea_loader.ts")).href;
  const script = `
    import { runBundle } from ${JSON.stringify(loader)};
    runBundle("process.exitCode = 75;", { require: () => ({}), module: {}, exports: {},
      __filename: "x", __dirname: "." }, ${JSON.stringify(cache)});`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script]);
  assert.equal(r.status, 75);
  assert.ok(existsSync(cache));
});

test("removeStaleCaches: code caches older than 30 days go, newer ones and other files stay", () => {
  const d = mkdtempSync(join(dir, "stale-"));
  for (const n of ["code-a-old.bin", "code-b-new.bin", "cncop_native.node"]) {
    writeFileSync(join(d, n), "x");
  }
  const old = new Date(Date.now() - 31 * 86400_000);
  utimesSync(join(d, "code-a-old.bin"), old, old);
  utimesSync(join(d, "cncop_native.node"), old, old);
  assert.equal(removeStaleCaches(d), 1);
  assert.deepEqual(readdirSync(d).sort(), ["cncop_native.node", "code-b-new.bin"]);
  assert.equal(removeStaleCaches(join(d, "missing")), 0, "never throws");
});
