#!/usr/bin/env node
// `npm run release`: builds the release archive of the build machine's platform,
//   build/dist/cncop-<version>-<os>-<arch>.tar.gz   (Linux, macOS)
//   build/dist/cncop-<version>-windows-<arch>.zip   (Windows, made with fflate)
// and its checksum file (<archive>.sha256, in `sha256sum -c` format). The archive holds one
// folder, cncop-<version>-<os>-<arch>/, that is a ready application directory:
//   Bin/cncop[.exe]   the single executable (scripts/build_sea.mjs)
//   Bin/<program>     a relative symlink to cncop for each program (Unix), or
//   Bin/<program>.cmd a one-line launcher (Windows)
//   Config/cncop3.ini the default settings; Logs/ and Spool/ (empty); README.md, LICENSE
// Every entry has the same time (SOURCE_DATE_EPOCH, else the HEAD commit's), owner 0 and a
// fixed mode, in name order: building twice from the same tree gives the same bytes
// (docs/release.md says when the executable itself differs).
//
// Usage: node scripts/release.mjs [--target os-arch] [--out DIR] [--no-native]
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";
import { zipSync } from "fflate";
import { $, minimist } from "zx";
import { buildSea, hostTarget, repo, sha256 } from "./build_sea.mjs";

/** `linux-x64` -> `{ os: "linux", arch: "x64" }`, with release names for the OS. */
export function releasePlatform(target) {
  const [os, arch] = target.split("-");
  const names = { linux: "linux", darwin: "macos", win32: "windows" };
  if (!(os in names)) throw new Error(`unsupported target ${target}`);
  return { os: names[os], arch, windows: os === "win32" };
}

/** The time stamped on every entry, in seconds since the epoch. */
export async function sourceDateEpoch() {
  const env = process.env.SOURCE_DATE_EPOCH;
  if (env !== undefined && /^\d+$/.test(env)) return Number(env);
  try {
    const r = await $({ cwd: repo, quiet: true })`git log -1 --format=%ct`;
    const t = Number(r.stdout.trim());
    if (Number.isFinite(t) && t > 0) return t;
  } catch {
    // not a git checkout
  }
  return 0;
}

// ---- tar (POSIX ustar), enough for files, directories and symlinks --------------------------

function octal(n, width) {
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

function tarHeader(entry, mtime) {
  const h = Buffer.alloc(512);
  let name = entry.path;
  let prefix = "";
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf("/", 155);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
    if (cut < 0 || Buffer.byteLength(name) > 100) throw new Error(`path too long: ${entry.path}`);
  }
  const size = entry.type === "file" ? entry.data.length : 0;
  h.write(name, 0, 100, "utf8");
  h.write(octal(entry.mode, 8), 100, 8, "ascii");
  h.write(octal(0, 8), 108, 8, "ascii");
  h.write(octal(0, 8), 116, 8, "ascii");
  h.write(octal(size, 12), 124, 12, "ascii");
  h.write(octal(mtime, 12), 136, 12, "ascii");
  h.write("        ", 148, 8, "ascii");
  h.write(entry.type === "dir" ? "5" : entry.type === "symlink" ? "2" : "0", 156, 1, "ascii");
  if (entry.type === "symlink") h.write(entry.target, 157, 100, "utf8");
  h.write("ustar\u000000", 257, 8, "ascii");
  h.write("root", 265, 32, "ascii");
  h.write("root", 297, 32, "ascii");
  h.write(prefix, 345, 155, "utf8");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "ascii");
  return h;
}

/** A gzip-compressed ustar archive of `entries` (sorted by path by the caller). */
export function tarGz(entries, mtime) {
  const parts = [];
  for (const e of entries) {
    parts.push(tarHeader(e, mtime));
    if (e.type === "file") {
      parts.push(e.data);
      const pad = (512 - (e.data.length % 512)) % 512;
      if (pad > 0) parts.push(Buffer.alloc(pad));
    }
  }
  parts.push(Buffer.alloc(1024));
  // zlib writes no name and a zero time in the gzip header: the bytes depend on the input.
  return gzipSync(Buffer.concat(parts), { level: 6 });
}

/** A zip archive of `entries` (fflate); symlinks are not expected (Windows). */
export function zip(entries, mtime) {
  // fflate stores DOS times from a Date's local fields: build the Date from the UTC fields
  // of mtime, so the bytes do not depend on the build machine's time zone.
  const u = new Date(mtime * 1000);
  const when = new Date(
    u.getUTCFullYear(),
    u.getUTCMonth(),
    u.getUTCDate(),
    u.getUTCHours(),
    u.getUTCMinutes(),
    u.getUTCSeconds(),
  );
  const files = {};
  for (const e of entries) {
    if (e.type === "symlink") throw new Error(`zip: no symlinks (${e.path})`);
    const unixMode = (e.type === "dir" ? 0o040000 : 0o100000) | e.mode;
    files[e.type === "dir" ? `${e.path}/` : e.path] = [
      e.type === "dir" ? new Uint8Array(0) : new Uint8Array(e.data),
      { mtime: when, level: e.type === "dir" ? 0 : 6, os: 3, attrs: unixMode << 16 },
    ];
  }
  return Buffer.from(zipSync(files));
}

// ---- the archive ------------------------------------------------------------------------------

/** Programs run only as `cncop <program>`: no name of their own in Bin/. */
export const SUBCOMMANDS = new Set(["init", "version", "zx"]);

/** The programs that get a name in Bin/ (src/cli/programs.ts, less {@link SUBCOMMANDS}). */
export async function programNames() {
  const mod = await import(pathToFileURL(join(repo, "src", "cli", "programs.ts")).href);
  return Object.keys(mod.programs).filter((p) => !SUBCOMMANDS.has(p)).sort();
}

/** A Windows launcher that runs `program` of the cncop.exe beside it. */
export function windowsLauncher(program) {
  return `@"%~dp0cncop.exe" ${program} %*\r\n`;
}

/** The entries of the release folder `top`, sorted by path. */
export async function releaseEntries(top, exe, windows) {
  const { defaultConfigText } = await import(
    pathToFileURL(join(repo, "src", "core", "config.ts")).href
  );
  const entries = [];
  const dir = (p) => entries.push({ path: `${top}/${p}`, type: "dir", mode: 0o755 });
  const file = (p, data, mode = 0o644) =>
    entries.push({ path: `${top}/${p}`, type: "file", mode, data: Buffer.from(data) });
  entries.push({ path: top, type: "dir", mode: 0o755 });
  for (
    const d of ["Bin", "Config", "Logs", "Spool", "Spool/Logs", "Spool/Messages", "Spool/Work"]
  ) {
    dir(d);
  }
  file(`Bin/${basename(exe)}`, readFileSync(exe), 0o755);
  for (const p of await programNames()) {
    if (windows) file(`Bin/${p}.cmd`, windowsLauncher(p));
    else entries.push({ path: `${top}/Bin/${p}`, type: "symlink", mode: 0o777, target: "cncop" });
  }
  file("Config/cncop3.ini", defaultConfigText());
  file("README.md", readFileSync(join(repo, "README.md")));
  file("LICENSE", readFileSync(join(repo, "LICENSE")));
  return entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * Builds the executable and the release archive for `target` into `out`.
 *
 * @param {{ target?: string, out?: string, native?: string | false }} opts
 */
export async function release(opts = {}) {
  const target = opts.target ?? hostTarget();
  const out = opts.out ?? join(repo, "build", "dist");
  const version = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")).version;
  const { os, arch, windows } = releasePlatform(target);
  const sea = await buildSea({
    target,
    out: join(dirname(out), "sea", target),
    native: opts.native,
  });
  const top = `cncop-${version}-${os}-${arch}`;
  const mtime = await sourceDateEpoch();
  const entries = await releaseEntries(top, sea.exe, windows);
  const archiveName = windows ? `${top}.zip` : `${top}.tar.gz`;
  const bytes = windows ? zip(entries, mtime) : tarGz(entries, mtime);
  mkdirSync(out, { recursive: true });
  const archive = join(out, archiveName);
  writeFileSync(archive, bytes);
  const archiveSha = sha256(bytes);
  writeFileSync(`${archive}.sha256`, `${archiveSha}  ${archiveName}\n`);
  return { archive, sha256: archiveSha, size: bytes.length, mtime, sea };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const argv = minimist(process.argv.slice(2), {
    string: ["target", "out", "native"],
    boolean: ["help"],
  });
  if (argv.help) {
    console.log(
      "Usage: node scripts/release.mjs [--target os-arch] [--out DIR] [--no-native] " +
        "[--native FILE]",
    );
    process.exit(0);
  }
  const r = await release({
    target: argv.target,
    out: argv.out,
    native: process.argv.includes("--no-native") ? false : argv.native,
  });
  const mb = (n) => `${(n / 1048576).toFixed(1)} MB`;
  console.log(`release: ${relative(process.cwd(), r.archive)} (${mb(r.size)})`);
  console.log(`  sha256 ${r.sha256}`);
  console.log(`  bundle sha256 ${r.sea.bundle.sha256}`);
  console.log(`  executable sha256 ${r.sea.executable.sha256}`);
  console.log(`  native core ${r.sea.native ? "embedded" : "not embedded"}`);
}
