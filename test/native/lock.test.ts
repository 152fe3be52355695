import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { cores, scratch } from "./_helpers.ts";

const childScript = fileURLToPath(new URL("./_lock_child.ts", import.meta.url));

interface Holder {
  child: ChildProcess;
  result: Promise<string>;
  exited: Promise<void>;
}

function holder(impl: string, path: string, wait: boolean): Holder {
  const child = spawn(process.execPath, [childScript, impl, path, wait ? "1" : "0"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const result = new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.endsWith("\n")) resolve(out.trim());
    });
    child.on(
      "exit",
      (code, sig) => reject(new Error(`lock child exited ${code ?? sig} before answering`)),
    );
  });
  result.catch(() => {});
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  return { child, result, exited };
}

for (const core of cores) {
  const name = core.implementation;

  test(`lockFile() [${name}] is exclusive within a process and not re-entrant`, async () => {
    const s = scratch("lk1");
    try {
      const p = join(s.dir, "job.lock");
      const a = await core.lockFile(p, false);
      assert.ok(a);
      assert.equal(await core.lockFile(p, false), null);
      const waiting = core.lockFile(p, true);
      a.release();
      const b = await waiting;
      assert.ok(b);
      b.release();
      b.release(); // idempotent
      const c = await core.lockFile(p, false);
      assert.ok(c);
      c.release();
    } finally {
      s.done();
    }
  });

  test(`lockFile() [${name}] is exclusive across processes and freed by kill -9`, async () => {
    const s = scratch("lk2");
    try {
      const p = join(s.dir, "job.lock");
      const h = holder(name, p, true);
      assert.equal(await h.result, "won");
      assert.equal(await core.lockFile(p, false), null);
      h.child.kill("SIGKILL");
      await h.exited; // reaped: the pid is gone, not a zombie
      const mine = await core.lockFile(p, false);
      assert.ok(mine, "lock still held after its holder was killed");
      const other = holder(name, p, false);
      assert.equal(await other.result, "lost");
      other.child.stdin!.end();
      await other.exited;
      mine.release();
    } finally {
      s.done();
    }
  });

  test(`lockFile() [${name}] gives exactly one winner among 20 racing processes`, async () => {
    const s = scratch("lk3");
    try {
      const p = join(s.dir, "job.lock");
      if (name === "portable") {
        // Start from a stale lock: its holder pid does not exist.
        writeFileSync(p, `999999999 0 ${"0".repeat(32)}\n`);
      }
      const hs = Array.from({ length: 20 }, () => holder(name, p, false));
      const results = await Promise.all(hs.map((h) => h.result));
      assert.equal(results.filter((r) => r === "won").length, 1, results.join(","));
      for (const h of hs) h.child.stdin!.end();
      await Promise.all(hs.map((h) => h.exited));
      if (name === "portable") assert.equal(existsSync(p), false, "released lock file left behind");
    } finally {
      s.done();
    }
  });
}
