import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { pathToFileURL } from "node:url";
import { codeCachePath, programKey } from "../../src/cli/sea_loader.ts";

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
  assert.equal(run(), "miss b42", "refused by V8, made again");
  assert.equal(run(), "hit b42");
});
