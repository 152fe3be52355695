#!/usr/bin/env node
// Builds the native core for the host: native/cncop_native.node, and refreshes the committed
// typings src/native/binding.d.ts. Skips the build when the .node is newer than every input.
// Usage: node scripts/build_native.mjs [--force]
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const crate = join(repo, "native");
const out = join(crate, "cncop_native.node");
const dts = join(repo, "src", "native", "binding.d.ts");
const force = process.argv.includes("--force");

/** Newest mtime (ms) among the crate's inputs. */
function newestInput() {
  let newest = 0;
  const visit = (p) => {
    const st = statSync(p);
    if (st.isDirectory()) { for (const name of readdirSync(p)) visit(join(p, name)); }
    else newest = Math.max(newest, st.mtimeMs);
  };
  visit(join(crate, "src"));
  for (const f of ["Cargo.toml", "Cargo.lock", "build.rs"]) {
    if (existsSync(join(crate, f))) visit(join(crate, f));
  }
  return newest;
}

if (!force && existsSync(out) && statSync(out).mtimeMs > newestInput()) {
  console.log(`build:native: ${out} is up to date`);
  process.exit(0);
}

const cargo = spawnSync("cargo", ["--version"], { encoding: "utf8" });
if (cargo.status !== 0) {
  console.error(
    "build:native: cargo not found - install Rust (https://rustup.rs), or run with CNCOP_NATIVE=0 to use the portable core",
  );
  process.exit(1);
}

const napi = join(repo, "node_modules", ".bin", process.platform === "win32" ? "napi.cmd" : "napi");
const tmp = mkdtempSync(join(tmpdir(), "cncop-native-"));
try {
  const r = spawnSync(
    napi,
    [
      "build",
      "--release",
      "--manifest-path",
      join(crate, "Cargo.toml"),
      "--output-dir",
      tmp,
      "--dts",
      "binding.d.ts",
      "--no-js",
    ],
    { stdio: "inherit", shell: process.platform === "win32" },
  );
  if (r.status !== 0) {
    console.error(`build:native: napi build failed (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
  const built = readdirSync(tmp).find((f) => f.endsWith(".node"));
  if (!built) {
    console.error(`build:native: no .node file produced in ${tmp}`);
    process.exit(1);
  }
  // Rename over the old addon, never write into it: a running process has it mapped, and
  // changing its pages in place crashes that process (SIGSEGV/SIGILL).
  const staged = `${out}.${process.pid}.tmp`;
  copyFileSync(join(tmp, built), staged);
  renameSync(staged, out);
  const typings = readFileSync(join(tmp, "binding.d.ts"), "utf8");
  if (!existsSync(dts) || readFileSync(dts, "utf8") !== typings) {
    writeFileSync(dts, typings);
    console.log(`build:native: updated ${dts}`);
  }
  console.log(`build:native: built ${out}`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
