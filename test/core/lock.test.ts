import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { acquireLock } from "../../src/core/lock.ts";
import { LockedError } from "../../src/core/errors.ts";
import { nativeStatus } from "../../src/native/mod.ts";
import { tempDir } from "../helpers/tmp.ts";

const lockTs = new URL("../../src/core/lock.ts", import.meta.url).href;

/** A child that tries the lock once, prints WON or LOST, and holds a won lock until stdin ends. */
function contender(path: string, env: Record<string, string>) {
  const code = `
    import { acquireLock } from ${JSON.stringify(lockTs)};
    try {
      await acquireLock(${JSON.stringify(path)}, { mode: "try", what: "test" });
      console.log("WON");
      process.stdin.resume();
      process.stdin.on("end", () => process.exit(0));
    } catch (err) {
      console.log(err.name === "LockedError" ? "LOST" : "FAIL " + err.message);
      process.exit(0);
    }`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", code], {
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const line = new Promise<string>((resolve) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      if (out.includes("\n")) resolve(out.trim());
    });
    child.on("close", () => resolve(out.trim()));
  });
  return { child, line };
}

test("the native core is loaded, so the lock tests below cover OS file locks", () => {
  const st = nativeStatus();
  assert.ok(st.loaded, `native core not loaded: ${st.reason} (run npm run build:native)`);
});

for (const [impl, env] of [["native", {}], ["portable", { CNCOP_NATIVE: "0" }]] as const) {
  test(`acquireLock() (${impl}): 20 racing processes, exactly one wins`, async () => {
    const path = join(tempDir(), "job-1.lock");
    const racers = Array.from({ length: 20 }, () => contender(path, env));
    const lines = await Promise.all(racers.map((r) => r.line));
    assert.equal(lines.filter((l) => l === "WON").length, 1, lines.join(","));
    assert.equal(lines.filter((l) => l === "LOST").length, 19, lines.join(","));
    for (const r of racers) r.child.stdin.end();
    await Promise.all(
      racers.map((r) =>
        new Promise((res) => r.child.exitCode !== null ? res(0) : r.child.on("close", res))
      ),
    );
  });

  test(`acquireLock() (${impl}): the lock dies with a kill -9'd holder`, async () => {
    const path = join(tempDir(), "app-nq.lock");
    const holder = contender(path, env);
    assert.equal(await holder.line, "WON");
    // Held: this process is refused in try mode.
    if (impl === "native") {
      await assert.rejects(
        acquireLock(path, { mode: "try", what: "the application" }),
        LockedError,
      );
    }
    const closed = new Promise((res) => holder.child.on("close", res));
    holder.child.kill("SIGKILL");
    await closed;
    const next = contender(path, env);
    assert.equal(await next.line, "WON", "no manual cleanup needed after kill -9");
    next.child.stdin.end();
  });
}

test("acquireLock() wait mode gets the lock once the holder releases it", async () => {
  const path = join(tempDir(), "job-2.lock");
  const holder = contender(path, {});
  assert.equal(await holder.line, "WON");
  let waited = false;
  const waiting = acquireLock(path, { mode: "wait", what: "job 2", onWait: () => (waited = true) });
  setTimeout(() => holder.child.stdin.end(), 200);
  const lock = await waiting;
  assert.ok(waited, "it reported that it had to wait");
  lock.release();
});

test("acquireLock() wait mode gives up after its timeout with a clear error", async () => {
  const path = join(tempDir(), "job-3.lock");
  const holder = contender(path, {});
  assert.equal(await holder.line, "WON");
  await assert.rejects(
    acquireLock(path, { mode: "wait", what: "job 3", timeoutMs: 300 }),
    /job 3 is still locked after 300 ms/,
  );
  holder.child.stdin.end();
});

test("acquireLock() is not re-entrant within one process", async () => {
  const path = join(tempDir(), "job-4.lock");
  const a = await acquireLock(path, { mode: "try", what: "job 4" });
  await assert.rejects(acquireLock(path, { mode: "try", what: "job 4" }), LockedError);
  a.release();
  const b = await acquireLock(path, { mode: "try", what: "job 4" });
  b.release();
});
