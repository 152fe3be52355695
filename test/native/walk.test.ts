import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { comparePaths } from "../../src/native/mod.ts";
import type { NativeCore, WalkEntry, WalkOptions } from "../../src/native/mod.ts";
import { addon, cores, scratch } from "./_helpers.ts";

async function list(core: NativeCore, root: string, o: WalkOptions = {}): Promise<WalkEntry[]> {
  const all: WalkEntry[] = [];
  for await (const b of core.walk(root, o)) all.push(...b);
  return all;
}

const paths = (es: WalkEntry[]) => es.map((e) => e.path);

for (const core of cores) {
  const name = core.implementation;

  test(`walk() [${name}] is sorted, a directory right before its content, nothing hidden`, async () => {
    const s = scratch("order");
    try {
      mkdirSync(join(s.dir, "a/b"), { recursive: true });
      mkdirSync(join(s.dir, "a.b"));
      writeFileSync(join(s.dir, "a/b/f"), "1");
      writeFileSync(join(s.dir, "a.b/g"), "22");
      writeFileSync(join(s.dir, ".gitignore"), "*");
      writeFileSync(join(s.dir, "B"), "");
      const all = await list(core, s.dir, { batchSize: 2 });
      assert.deepEqual(paths(all), [".gitignore", "B", "a", "a/b", "a/b/f", "a.b", "a.b/g"]);
      assert.deepEqual([...paths(all)].sort(comparePaths), paths(all));
      const g = all.find((e) => e.path === "a.b/g")!;
      assert.equal(g.kind, "file");
      assert.equal(g.size, 2);
      assert.equal(typeof g.mtimeNs, "bigint");
      assert.ok(g.mtimeNs > 1_500_000_000_000_000_000n);
      assert.equal(g.mode & 0o170000, 0o100000);
    } finally {
      s.done();
    }
  });

  test(`walk() [${name}] reports symlink loops as error entries and ends`, async () => {
    const s = scratch("loop");
    try {
      mkdirSync(join(s.dir, "d"));
      symlinkSync("..", join(s.dir, "d/up"));
      symlinkSync("x2", join(s.dir, "x1"));
      symlinkSync("x1", join(s.dir, "x2"));
      const all = await list(core, s.dir);
      assert.deepEqual(all.map((e) => [e.path, e.kind, e.error]), [
        ["d", "dir", undefined],
        ["d/up", "error", "ELOOP: symlink loop"],
        ["x1", "symlink", undefined],
        ["x2", "symlink", undefined],
      ]);
      assert.equal(all[2]!.linkTarget, "x2");
      const nofollow = await list(core, s.dir, { followLinks: false });
      assert.deepEqual(nofollow.map((e) => [e.path, e.kind, e.linkTarget]), [
        ["d", "dir", undefined],
        ["d/up", "symlink", ".."],
        ["x1", "symlink", "x2"],
        ["x2", "symlink", "x1"],
      ]);
      assert.deepEqual(paths(await list(core, s.dir, { skipLinks: true })), ["d"]);
    } finally {
      s.done();
    }
  });

  test(`walk() [${name}] include, exclude and reportExcluded`, async () => {
    const s = scratch("filter");
    try {
      mkdirSync(join(s.dir, "src/deep"), { recursive: true });
      mkdirSync(join(s.dir, "tmp"));
      for (const f of ["src/a.ts", "src/deep/b.ts", "src/deep/c.md", "tmp/x.ts", "top.ts"]) {
        writeFileSync(join(s.dir, f), f);
      }
      const inc = await list(core, s.dir, { include: ["**/*.ts"], exclude: ["tmp"] });
      assert.deepEqual(paths(inc), ["src/a.ts", "src/deep/b.ts", "top.ts"]);
      const rep = await list(core, s.dir, { include: ["src"], reportExcluded: true });
      assert.deepEqual(rep.map((e) => [e.path, e.excluded ?? false]), [
        ["src", false],
        ["src/a.ts", false],
        ["src/deep", false],
        ["src/deep/b.ts", false],
        ["src/deep/c.md", false],
        ["tmp", true],
        ["tmp/x.ts", true],
        ["top.ts", true],
      ]);
    } finally {
      s.done();
    }
  });

  test(`walk() [${name}] rejects a root that is not a directory`, async () => {
    const s = scratch("root");
    try {
      writeFileSync(join(s.dir, "f"), "");
      await assert.rejects(list(core, join(s.dir, "f")), /not a directory/);
      await assert.rejects(list(core, join(s.dir, "missing")), /ENOENT/);
    } finally {
      s.done();
    }
  });

  test(`walk() [${name}] can stop early`, async () => {
    const s = scratch("stop");
    try {
      for (let i = 0; i < 50; i++) writeFileSync(join(s.dir, `f${i}`), "");
      let n = 0;
      for await (const b of core.walk(s.dir, { batchSize: 5 })) {
        n += b.length;
        break;
      }
      assert.equal(n, 5);
    } finally {
      s.done();
    }
  });
}

const canDrop = process.getuid?.() === 0;
test("walk() reports unreadable directories as error entries (as uid 65534)", {
  skip: canDrop ? false : "needs root to drop privileges to uid 65534 for EACCES",
}, () => {
  const s = scratch("eacces");
  try {
    chmodSync(s.dir, 0o755);
    mkdirSync(join(s.dir, "locked"));
    writeFileSync(join(s.dir, "locked/secret"), "x");
    mkdirSync(join(s.dir, "open"));
    writeFileSync(join(s.dir, "open/f"), "x");
    chmodSync(join(s.dir, "locked"), 0o000);
    const child = fileURLToPath(new URL("./_walk_child.ts", import.meta.url));
    const r = spawnSync(process.execPath, [child, s.dir], {
      uid: 65534,
      gid: 65534,
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as Record<string, unknown>;
    const want = [
      { path: "locked", kind: "error", error: "EACCES: permission denied" },
      { path: "open", kind: "dir" },
      { path: "open/f", kind: "file" },
    ];
    assert.deepEqual(got["portable"], want);
    if (addon) assert.deepEqual(got["native"], want);
  } finally {
    s.done();
  }
});
