import assert from "node:assert/strict";
import { statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { CncopError } from "../../src/core/errors.ts";
import { addon, noAddon, portable, scratch } from "./_helpers.ts";

test(
  "forkWrite() / forkRead() / forkRemove() round-trip without touching mtime",
  { skip: noAddon },
  (t) => {
    const core = addon!;
    const s = scratch("fork");
    try {
      if (!core.forksSupported(s.dir)) {
        t.skip(`filesystem of ${s.dir} has no user xattrs`);
        return;
      }
      const f = join(s.dir, "file");
      writeFileSync(f, "content");
      utimesSync(f, new Date("2020-01-02T03:04:05Z"), new Date("2020-01-02T03:04:05Z"));
      const before = statSync(f, { bigint: true }).mtimeNs;
      assert.equal(core.forkRead(f, "cncop.state"), null);
      core.forkWrite(f, "cncop.state", Buffer.from('{"h":"abc"}'));
      assert.equal(core.forkRead(f, "cncop.state")?.toString(), '{"h":"abc"}');
      core.forkWrite(f, "cncop.state", new Uint8Array([1, 2, 3]));
      assert.deepEqual([...core.forkRead(f, "cncop.state")!], [1, 2, 3]);
      assert.equal(statSync(f, { bigint: true }).mtimeNs, before);
      core.forkRemove(f, "cncop.state");
      core.forkRemove(f, "cncop.state"); // absent: no error
      assert.equal(core.forkRead(f, "cncop.state"), null);
      assert.equal(statSync(f, { bigint: true }).mtimeNs, before);
      // Forks by path are the path's own: never a symbolic link's target's.
      const link = join(s.dir, "link");
      symlinkSync(f, link);
      core.forkWrite(f, "cncop.state", new Uint8Array([7]));
      assert.equal(core.forkRead(link, "cncop.state"), null);
      try {
        core.forkWrite(link, "cncop.state", new Uint8Array([8])); // Linux refuses (EPERM)
      } catch { /* a link takes no user xattrs here */ }
      assert.deepEqual([...core.forkRead(f, "cncop.state")!], [7]);
      assert.throws(() => core.forkWrite(f, "bad/name", new Uint8Array()), /bad name/);
      assert.throws(() => core.forkRead(join(s.dir, "missing"), "x"), /ENOENT/);
    } finally {
      s.done();
    }
  },
);

test("forksSupported() is false on a filesystem without xattrs", { skip: noAddon }, () => {
  // /proc takes no user xattrs (and no scratch files).
  assert.equal(addon!.forksSupported("/proc"), false);
});

test("portable forks: unsupported, and say so", () => {
  assert.equal(portable.forksSupported("/tmp"), false);
  assert.throws(() => portable.forkRead("/tmp/x", "a"), CncopError);
  assert.throws(() => portable.forkWrite("/tmp/x", "a", new Uint8Array()), /native core/);
});
