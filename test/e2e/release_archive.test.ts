/**
 * The archive writers of scripts/release.mjs: a tar.gz that the system tar unpacks as
 * written, a zip (the Windows archive) that does not depend on the build machine's time
 * zone, both byte-for-byte repeatable.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { lstatSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { unzipSync } from "fflate";
import { removeTemps, repo, tempDir } from "./release_build.ts";

after(removeTemps);

interface Entry {
  path: string;
  type: "dir" | "file" | "symlink";
  mode: number;
  data?: Buffer;
  target?: string;
}

const release = (await import(join(repo, "scripts", "release.mjs"))) as {
  tarGz(entries: Entry[], mtime: number): Buffer;
  zip(entries: Entry[], mtime: number): Buffer;
  windowsLauncher(program: string): string;
  releasePlatform(target: string): { os: string; arch: string; windows: boolean };
};

const mtime = 1767225600; // 2026-01-01T00:00:00Z
const long = `top/${"deep/".repeat(25)}file.txt`; // > 100 bytes: needs the ustar prefix
const entries: Entry[] = [
  { path: "top", type: "dir", mode: 0o755 },
  { path: "top/Bin", type: "dir", mode: 0o755 },
  { path: "top/Bin/cncop", type: "file", mode: 0o755, data: Buffer.from("#!/bin/sh\necho hi\n") },
  { path: "top/Bin/cncopd", type: "symlink", mode: 0o777, target: "cncop" },
  { path: "top/empty", type: "file", mode: 0o644, data: Buffer.alloc(0) },
  { path: "top/big", type: "file", mode: 0o644, data: Buffer.alloc(1000, 65) },
  { path: long, type: "file", mode: 0o600, data: Buffer.from("long name\n") },
];

test("tarGz() writes what tar unpacks: modes, symlinks, long names, one time", () => {
  const a = release.tarGz(entries, mtime);
  assert.deepEqual(release.tarGz(entries, mtime), a, "repeatable");
  const dir = tempDir();
  writeFileSync(join(dir, "a.tar.gz"), a);
  const r = spawnSync("tar", ["xzf", "a.tar.gz"], { cwd: dir, encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readFileSync(join(dir, "top/Bin/cncop"), "utf8"), "#!/bin/sh\necho hi\n");
  assert.equal(lstatSync(join(dir, "top/Bin/cncop")).mode & 0o777, 0o755);
  assert.equal(readlinkSync(join(dir, "top/Bin/cncopd")), "cncop");
  assert.equal(readFileSync(join(dir, "top/big"), "utf8"), "A".repeat(1000));
  assert.equal(readFileSync(join(dir, long), "utf8"), "long name\n");
  assert.equal(lstatSync(join(dir, long)).mode & 0o777, 0o600);
  assert.equal(lstatSync(join(dir, "top/empty")).size, 0);
  assert.equal(lstatSync(join(dir, "top/big")).mtimeMs, mtime * 1000);
  assert.deepEqual(readdirSync(join(dir, "top")).sort(), ["Bin", "big", "deep", "empty"]);
  const list = spawnSync("tar", ["tvzf", "a.tar.gz"], { cwd: dir, encoding: "utf8" });
  assert.match(list.stdout, /root\/root/);
  assert.notEqual(release.tarGz(entries, mtime + 1).toString("hex"), a.toString("hex"));
});

test("zip() holds every entry and its bytes do not depend on the time zone", () => {
  const files = entries.filter((e) => e.type !== "symlink");
  const z = release.zip(files, mtime);
  const out = unzipSync(new Uint8Array(z));
  assert.deepEqual(
    Object.keys(out).sort(),
    [
      "top/",
      "top/Bin/",
      "top/Bin/cncop",
      "top/big",
      "top/empty",
      long,
    ].sort(),
  );
  assert.equal(Buffer.from(out["top/big"]!).toString(), "A".repeat(1000));
  assert.throws(() => release.zip(entries, mtime), /no symlinks/);
  const inZone = (tz: string) => {
    const code = `const r = await import(${JSON.stringify(join(repo, "scripts", "release.mjs"))});
      const e = ${JSON.stringify(files.map((f) => ({ ...f, data: f.data?.toString("base64") })))}
        .map((f) => ({ ...f, data: f.data === undefined ? undefined : Buffer.from(f.data, "base64") }));
      process.stdout.write(r.zip(e, ${mtime}).toString("base64"));`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", code], {
      env: { ...process.env, TZ: tz },
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  };
  const utc = inZone("UTC");
  assert.equal(inZone("Pacific/Kiritimati"), utc);
  assert.equal(inZone("America/Los_Angeles"), utc);
  // The DOS time in the first local header is 2026-01-01 00:00:00, in any zone.
  const b = Buffer.from(utc, "base64");
  assert.equal(b.readUInt16LE(10), 0, "DOS time 00:00:00");
  assert.equal(b.readUInt16LE(12), ((2026 - 1980) << 9) | (1 << 5) | 1, "DOS date 2026-01-01");
});

test("the Windows launcher runs the named program of the cncop.exe beside it", () => {
  assert.equal(release.windowsLauncher("cncopagent"), '@"%~dp0cncop.exe" cncopagent %*\r\n');
  assert.deepEqual(release.releasePlatform("win32-x64"), {
    os: "windows",
    arch: "x64",
    windows: true,
  });
  assert.deepEqual(release.releasePlatform("darwin-arm64"), {
    os: "macos",
    arch: "arm64",
    windows: false,
  });
  assert.throws(() => release.releasePlatform("aix-ppc64"), /unsupported target/);
});
