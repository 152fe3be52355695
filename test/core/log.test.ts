import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { logBaseName, openLog, pruneLogs } from "../../src/core/log.ts";
import { localDate, newestLog, parseLogName } from "../../src/core/log_find.ts";
import { tempDir } from "../helpers/tmp.ts";

const at = new Date(2026, 10, 21, 9, 5, 7); // local time, 2026-11-21 09:05:07

test("logBaseName() gives the names DESIGN.md lists", () => {
  assert.equal(logBaseName("CA", "session", at), "CA-26-11-21_0905");
  assert.equal(logBaseName("NQ", "daily", at), "NQ-2026-11-21");
  assert.equal(logBaseName("NQPK", "unique", at), "NQPK-2026-11-21_090507");
});

test("openLog() adds -001, -002 when the CA name is taken", () => {
  const dir = tempDir();
  const now = () => at;
  const logs = [0, 1, 2].map(() =>
    openLog({ dir, prefix: "CA", style: "session", program: "cncopagent", now })
  );
  assert.deepEqual(logs.map((l) => l.path.slice(dir.length + 1)), [
    "CA-26-11-21_0905.log",
    "CA-26-11-21_0905-001.log",
    "CA-26-11-21_0905-002.log",
  ]);
  for (const l of logs) l.close();
});

test("createUniqueLog() never hands one name to two concurrent processes", async () => {
  const dir = tempDir();
  const code = `
    import { createUniqueLog } from ${
    JSON.stringify(new URL("../../src/core/log.ts", import.meta.url).href)
  };
    const { path } = createUniqueLog(${JSON.stringify(dir)}, "CA-26-11-21_0905");
    console.log(path);`;
  const runs = Array.from({ length: 8 }, () =>
    new Promise<string>((resolve, reject) => {
      const c = spawn(process.execPath, ["--input-type=module", "-e", code]);
      let out = "";
      c.stdout.on("data", (d) => (out += d));
      c.on("error", reject);
      c.on("close", (st) => (st === 0 ? resolve(out.trim()) : reject(new Error(`exit ${st}`))));
    }));
  const paths = await Promise.all(runs);
  assert.equal(new Set(paths).size, 8);
  assert.equal(readdirSync(dir).filter((n) => n.endsWith(".log")).length, 8);
});

test("openLog() daily logs append; -d writes diagnostics to the spool", () => {
  const dir = tempDir();
  const spool = join(dir, "spool");
  const now = () => at;
  const a = openLog({
    dir,
    prefix: "NQ",
    style: "daily",
    program: "backupagentnq",
    now,
    debugDir: spool,
  });
  a.info("first");
  a.debug("detail");
  a.close();
  const b = openLog({ dir, prefix: "NQ", style: "daily", program: "backupagentnq", now });
  b.error("second");
  b.close();
  const text = readFileSync(join(dir, "NQ-2026-11-21.log"), "utf8");
  assert.match(
    text,
    /INFO {2}\[backupagentnq \d+\] first\n.*ERROR \[backupagentnq \d+\] second\n$/,
  );
  assert.doesNotMatch(text, /detail/);
  const dbg = readFileSync(join(spool, "NQ-2026-11-21.log"), "utf8");
  assert.match(dbg, /first/);
  assert.match(dbg, /DEBUG .*detail/);
});

test("pruneLogs() removes logs older than N days, not newer ones, not open ones", () => {
  const dir = tempDir();
  const now = new Date();
  const old = (name: string, days: number) => {
    writeFileSync(join(dir, name), "x");
    const t = new Date(now.getTime() - days * 86_400_000);
    utimesSync(join(dir, name), t, t);
  };
  old("CA-26-01-01_0100.log", 91);
  old("CA-26-01-01_0100-001.log", 120);
  old("NQ-2026-08-01.log", 89);
  old("notes.txt", 200);
  const open = openLog({ dir, prefix: "DQ", style: "daily", program: "backupagentdq" });
  const t = new Date(now.getTime() - 100 * 86_400_000);
  utimesSync(open.path, t, t); // still being written, though its mtime is old
  const removed = pruneLogs([dir], 90, now).map((p) => p.slice(dir.length + 1)).sort();
  assert.deepEqual(removed, ["CA-26-01-01_0100-001.log", "CA-26-01-01_0100.log"]);
  assert.ok(existsSync(open.path));
  assert.ok(existsSync(join(dir, "notes.txt")));
  open.close();
  assert.deepEqual(pruneLogs([dir], 90, now).map((p) => p.slice(dir.length + 1)), [
    open.path.slice(dir.length + 1),
  ]);
  assert.deepEqual(pruneLogs([dir], 30, now).map((p) => p.slice(dir.length + 1)), [
    "NQ-2026-08-01.log",
  ]);
});

test("pruneLogs() ignores the marker of a process that died", () => {
  const dir = tempDir();
  writeFileSync(join(dir, "CA-26-01-01_0100.log"), "x");
  const t = new Date(Date.now() - 100 * 86_400_000);
  utimesSync(join(dir, "CA-26-01-01_0100.log"), t, t);
  const log = openLog({ dir, prefix: "XX", style: "daily", program: "t" });
  log.close();
  // A marker left by a kill -9'd writer (pid 2^22 + 1 is above Linux's pid_max).
  writeFileSync(join(dir, ".open", "CA-26-01-01_0100.log@4194305"), "");
  assert.equal(pruneLogs([dir], 90).length, 1);
  assert.deepEqual(readdirSync(join(dir, ".open")), []);
});

test("parseLogName() and newestLog() pick by prefix and date", () => {
  const dir = tempDir();
  const today = localDate(new Date());
  const twoAgo = localDate(new Date(), 2);
  const ca = (d: string, hm: string, suf = "") => `CA-${d.slice(2)}_${hm}${suf}.log`;
  for (
    const n of [
      ca(twoAgo, "0100"),
      ca(twoAgo, "2300"),
      ca(twoAgo, "2300", "-001"),
      ca(today, "0005"),
      `NQ-${today}.log`,
    ]
  ) {
    writeFileSync(join(dir, n), n);
  }
  assert.deepEqual(parseLogName("CA-26-11-21_0905-001.log"), { prefix: "CA", date: "2026-11-21" });
  assert.deepEqual(parseLogName("NQU-2026-11-21.log"), { prefix: "NQU", date: "2026-11-21" });
  assert.equal(parseLogName("ca-26-11-21_0905.log"), undefined);
  assert.equal(newestLog(dir, "ca")?.name, ca(today, "0005"));
  assert.equal(newestLog(dir, "CA", 2)?.name, ca(twoAgo, "2300", "-001"));
  assert.equal(newestLog(dir, "CA", 1), undefined);
  assert.equal(newestLog(dir, "NQ")?.name, `NQ-${today}.log`);
});
