import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { programs } from "../../src/cli/programs.ts";
import { runCli } from "../helpers/run_cli.ts";
import { tempDir, tempHome } from "../helpers/tmp.ts";

test("every program answers -h, -? and --help with its usage, exit 0", () => {
  for (const name of Object.keys(programs)) {
    for (const flag of ["-h", "-?", "--help"]) {
      const r = runCli([name, flag]);
      assert.equal(r.status, 0, `${name} ${flag}: ${r.stderr}`);
      assert.match(r.stdout, /Usage:/, `${name} ${flag}`);
    }
  }
});

test("cncop without a program lists them; an unknown one is a usage error", () => {
  const none = runCli([]);
  assert.equal(none.status, 2);
  assert.match(none.stdout, /cncopagent/);
  const bad = runCli(["cncopfoo"]);
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr, `cncop: unknown program "cncopfoo" - run 'cncop --help'\n`);
});

test("the executable runs the program named by the name it was started under", () => {
  const home = tempHome();
  // No CNCOP_HOME: the home is found from the executable's own Bin/.
  const r = runCli(["list"], { CNCOP_HOME: "", CNCOP_ARGV0: join(home.bin, "cncopjobs") });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /no jobs/);
});

test("a program outside any Bin/ and without CNCOP_HOME says how to fix it", () => {
  const r = runCli(["cncopjobs", "list"], { CNCOP_HOME: "" });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^cncopjobs: no application directory - set CNCOP_HOME/);
});

test("cncop init makes the layout DESIGN.md gives, and is idempotent", () => {
  const dir = join(tempDir(), "new-home");
  const first = runCli(["init", dir]);
  assert.equal(first.status, 0, first.stderr);
  for (
    const p of [
      "Bin",
      "Config/cncop3.ini",
      "Config/backupjobs.db",
      "Logs",
      "Spool/Messages",
      "Spool/Work",
      "Spool/Logs",
    ]
  ) {
    assert.ok(existsSync(join(dir, p)), p);
  }
  const ini = readFileSync(join(dir, "Config/cncop3.ini"), "utf8");
  assert.match(ini, /^\[defaults\]$/m);
  assert.match(ini, /^;days_of_logs = 90$/m);
  assert.match(ini, /^\[mail\]$/m);
  assert.match(ini, /^\[network\]$/m);
  const second = runCli(["init", dir]);
  assert.equal(second.status, 0);
  assert.match(second.stdout, /nothing to do/);
  assert.equal(readFileSync(join(dir, "Config/cncop3.ini"), "utf8"), ini);
});

test("a malformed cncop3.ini stops a program with one line naming file, line and key", () => {
  const home = tempHome();
  const r = runCli(["cncopjobs", "-c", join(home.config, "missing.ini"), "list"], {
    CNCOP_HOME: home.home,
  });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /cannot read .*missing\.ini: ENOENT - check the -c path/);
});

test("cncop version reports version, platform, native core, runtime and SQLite", () => {
  const r = runCli(["version", "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const v = JSON.parse(r.stdout);
  assert.match(v.version, /^\d+\.\d+\.\d+/);
  assert.equal(v.platform, `${process.platform}-${process.arch}`);
  assert.match(v.native, /^(loaded|not loaded)/);
  assert.match(v.runtime, /^node v24\./);
  assert.match(v.sqlite, /^3\.\d+/);
  const off = JSON.parse(runCli(["version", "--json"], { CNCOP_NATIVE: "0" }).stdout);
  assert.match(off.native, /^not loaded: .*CNCOP_NATIVE=0/);
});
