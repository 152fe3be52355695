#!/usr/bin/env node
// Start-up time of the single executable: the median wall time of `cncop --help` and
// `cncop version` (which also loads the native core and SQLite), without a code cache
// (`CNCOP_CODE_CACHE=0`, as a program's first run on a machine) and with the one the loader
// makes at that first run (src/cli/sea_loader.ts), against `node --version` (the same Node
// binary doing nothing: the floor) and `node -e 0` (starting any script at all).
// hyperfine when it is installed, else a loop.
//
// Usage: node bench/startup.mjs [--runs 50] [--write]   (--write updates bench/RESULTS.md)
import { spawnSync } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { $, minimist, tmpfile, which } from "zx";
import {
  buildSea,
  hostTarget,
  nodeBinaryFor,
  pinnedNodeVersion,
  repo,
} from "../scripts/build_sea.mjs";
import { writeResultsSection } from "./_results.mjs";

const argv = minimist(process.argv.slice(2), { boolean: ["write"], default: { runs: 50 } });
const runs = Number(argv.runs);
const out = join(repo, "build", "bench-startup");
mkdirSync(out, { recursive: true });

console.log("startup: building the executable...");
const plain = await buildSea({ out: join(out, "plain") });
const node = await nodeBinaryFor(hostTarget(), pinnedNodeVersion());
// A home, so `version` and `--help` run as on a device (no CNCOP_HOME lookups fail); the
// code caches go to a fresh private directory.
const cacheDir = join(out, "cache");
rmSync(cacheDir, { recursive: true, force: true });
const withCache = {
  ...process.env,
  HOME: "",
  CNCOP_HOME: join(out, "home"),
  TMPDIR: out,
  CNCOP_CACHE_DIR: cacheDir,
};
const noCache = { ...withCache, CNCOP_CODE_CACHE: "0" };
spawnSync(plain.exe, ["init", withCache.CNCOP_HOME], { env: noCache });

const cases = [
  ["node --version (floor)", node, ["--version"], noCache],
  ["node -e 0 (empty script)", node, ["-e", "0"], noCache],
  ["cncop --help (no code cache)", plain.exe, ["--help"], noCache],
  ["cncop --help", plain.exe, ["--help"], withCache],
  ["cncop version (no code cache)", plain.exe, ["version"], noCache],
  ["cncop version", plain.exe, ["version"], withCache],
];

const quote = (s) => `'${s.replace(/'/g, "'\\''")}'`;

async function withHyperfine() {
  const out = [];
  // One hyperfine per case: each has its own environment (the warm-up makes the cache).
  for (const [, file, args, env] of cases) {
    const json = tmpfile("startup.json", "");
    const cmd = [file, ...args].map(quote).join(" ");
    await $({
      env,
      quiet: true,
    })`hyperfine -N --warmup 5 --runs ${runs} --export-json ${json} ${cmd}`;
    const [r] = JSON.parse(readFileSync(json, "utf8")).results;
    out.push({ wall: r.median * 1000, cpu: (r.user + r.system) * 1000 });
  }
  return out;
}

function withLoop() {
  return cases.map(([, file, args, env]) => {
    for (let i = 0; i < 5; i++) spawnSync(file, args, { env });
    const times = [];
    for (let i = 0; i < runs; i++) {
      const t0 = process.hrtime.bigint();
      spawnSync(file, args, { env, stdio: "ignore" });
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    times.sort((a, b) => a - b);
    return { wall: times[Math.floor(times.length / 2)], cpu: undefined };
  });
}

const tool = (await which("hyperfine", { nothrow: true })) ? "hyperfine" : "loop";
const medians = tool === "hyperfine" ? await withHyperfine() : withLoop();
const floor = medians[0].wall;
/** A markdown table padded the way `deno fmt` leaves it (first column left, others right). */
function table(head, body) {
  const width = head.map((h, c) => Math.max(h.length, ...body.map((r) => r[c].length)));
  const line = (cells) =>
    `| ${cells.map((x, c) => (c === 0 ? x.padEnd(width[c]) : x.padStart(width[c]))).join(" | ")} |`;
  const rule = `| ${
    width.map((w, c) => (c === 0 ? "-".repeat(w) : "-".repeat(w - 1) + ":")).join(" | ")
  } |`;
  return [line(head), rule, ...body.map(line)];
}
// CPU time (user + system, mean) moves less than wall time on a busy machine.
const rows = table(
  ["command", "median ms", "vs floor", "CPU ms"],
  cases.map(([name], i) => [
    name,
    medians[i].wall.toFixed(1),
    `${(medians[i].wall / floor).toFixed(1)}x`,
    medians[i].cpu === undefined ? "n/a" : medians[i].cpu.toFixed(1),
  ]),
);
const mb = (f) => (statSync(f).size / 1048576).toFixed(1);
const section = [
  "## Executable",
  "",
  `Start-up of the single executable (\`bench/startup.mjs\`, ${tool}, median of ${runs} runs, ` +
  `${new Date().toISOString().slice(0, 10)}, ${cpus()[0]?.model ?? "?"} x${cpus().length}, ` +
  `Node ${pinnedNodeVersion()} ${hostTarget()}, load average ${loadavg()[0].toFixed(1)}). ` +
  "Goal: `cncop --help` under 300 ms.",
  "",
  ...rows,
  "",
  `Executable ${mb(plain.exe)} MB (the official Node binary is ${mb(node)} MB); bundle ` +
  `${(statSync(join(plain.out, "cncop.cjs")).size / 1024).toFixed(0)} KB. Release builds ` +
  "are reproducible, so they carry no code cache; each program's first run on a machine " +
  "saves one (src/cli/sea_loader.ts, docs/release.md), which the runs after it start from.",
  "",
].join("\n");
console.log("\n" + section);

if (argv.write) {
  console.log(`startup: wrote ${writeResultsSection(repo, "## Executable", section)}`);
}
