#!/usr/bin/env node
// The project's test command (`npm test`): builds the native addon when stale, checks types,
// format and lint, runs every node:test file, then a Deno smoke run of the same sources.
import os from "node:os";
import { $, cd, fs, path } from "zx";

$.verbose = true;
const root = path.resolve(import.meta.dirname, "..");
cd(root);

const step = (name) => console.log(`\n== ${name}`);

if (fs.existsSync("scripts/build_native.mjs")) {
  step("native addon");
  await $`node scripts/build_native.mjs`;
  step("cargo clippy and cargo test (native/)");
  await $`cargo clippy --quiet --manifest-path native/Cargo.toml --all-targets -- -D warnings`;
  await $`cargo test --quiet --manifest-path native/Cargo.toml`;
}

step("type check");
await $`tsc --noEmit -p tsconfig.json`;
step("deno fmt --check");
await $`deno fmt --check`;
step("deno lint");
await $`deno lint`;

step("node --test");
const only = process.argv.slice(2);
const files = only.length ? only : ["test/**/*.test.ts"];
const run = await $`node --test --test-concurrency=2 --test-timeout=600000 ${files}`;
const count = (what) => Number(new RegExp(`^ℹ ${what} (\\d+)$`, "m").exec(run.stdout)?.[1] ?? NaN);
const passed = count("pass");
const failed = count("fail");

step("deno smoke");
const home = fs.mkdtempSync(path.join(os.tmpdir(), "cncop-deno-smoke-"));
const env = { ...process.env, CNCOP_HOME: path.join(home, "home") };
await $({ env })`deno run -A src/cli/main.ts init`;
await $({
  env,
})`deno run -A src/cli/main.ts cncopjobs add --title Smoke --type ccs --source ${home}`;
const list = await $({ env })`deno run -A src/cli/main.ts cncopjobs list`;
if (!/Smoke/.test(list.stdout)) throw new Error("deno smoke: the job added is not listed");
await $({ env })`deno run -A src/cli/main.ts version`;
console.log("\ndeno smoke: ok");
fs.rmSync(home, { recursive: true, force: true });
console.log(`tests: ${passed} passed, ${failed} failed`);
