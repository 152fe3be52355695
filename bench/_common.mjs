// Shared by the benchmarks: command-line options, where the sources are, how to run a cncop
// program from them, and a local cncopd on loopback.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { $, fs, os, path } from "zx";
import { NODE_FLAGS } from "../src/core/runtime_flags.ts";

$.verbose = false;
/** The benchmark's command-line arguments. */
export const args = process.argv.slice(2);
/** The value after option `name`, else `def`. */
export const arg = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
/** The repository root. */
export const repo = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
/** The pinned Node running the benchmark. */
export const node = process.execPath;
/** `node ${run} program args`: the sources, with the V8 flags the executable embeds. */
export const run = [...NODE_FLAGS, path.join(repo, "src", "cli", "main.ts")];

/** The 1-minute load average sampled before each {@link timed} command. */
export const loads = [];

/** CPU seconds (user + system) process `pid` has used so far; NaN when it is gone. */
export function cpuSecs(pid) {
  try {
    // Fields after the command name: utime and stime are the 12th and 13th, in clock ticks.
    const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

/**
 * Runs a command under GNU time: wall seconds, peak RSS in MB (of the largest process of its
 * tree), CPU seconds (user + system, of the process and the children it waited for) and its
 * stdout. Throws when it fails.
 */
export async function timed(cmd, cmdArgs, env = {}) {
  // Whatever the step before wrote (an unpacked tree, a backup) is flushed first: its
  // write-back would otherwise take CPU from this step (it made a first backup of the
  // Linux tree 40-60% slower, for cncop and restic alike).
  await $`sync`;
  await new Promise((res) => setTimeout(res, 2000));
  loads.push(os.loadavg()[0]);
  const t = Date.now();
  const r = await $({
    env: { ...process.env, ...env },
    nothrow: true,
  })`/usr/bin/time -f ${"%M %U %S"} ${cmd} ${cmdArgs}`;
  const secs = (Date.now() - t) / 1000;
  const lines = r.stderr.trim().split("\n");
  const [rss, user, sys] = lines[lines.length - 1].split(" ").map(Number);
  if (r.exitCode !== 0) throw new Error(`${cmd} ${cmdArgs.join(" ")} failed: ${r.stderr}`);
  return { secs, rssMb: rss / 1024, cpu: user + sys, stdout: r.stdout };
}

/**
 * How the benchmarks run cncop: `[command, ...leading args]`. The single executable the
 * release ships (built into `dir` by scripts/build_sea.mjs, about 10 s), unless `--sources`
 * is given: then Node on the sources, which adds the TypeScript loader's start-up (about
 * 100 ms a process) and memory (about 40 MB).
 */
export async function cncopCommand(dir) {
  if (args.includes("--sources")) return [node, ...run];
  const { buildSea } = await import("../scripts/build_sea.mjs");
  console.log("building the executable (scripts/build_sea.mjs) ...");
  return [(await buildSea({ out: dir })).exe];
}

/**
 * Starts `cncopd serve` on a free loopback port with data in `data`, and points the home's
 * cncop3.ini at it with `token`. Resolves to the server process. `cmd` is how to run cncop
 * (see {@link cncopCommand}).
 */
export async function startCncopd(data, home, token, cmd = [node, ...run]) {
  const server = spawn(
    cmd[0],
    [...cmd.slice(1), "cncopd", "serve", "--listen", "127.0.0.1:0", "--data", data],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const url = await new Promise((resolve, reject) => {
    createInterface({ input: server.stdout }).on("line", (l) => {
      const m = /listening on (\S+)/.exec(l);
      if (m) resolve(m[1]);
    });
    server.once("exit", (c) => reject(new Error(`cncopd exited ${c}`)));
  });
  await fs.writeFile(
    path.join(home, "Config", "cncop3.ini"),
    `[network]\nurl = ${url}\ntoken = ${token}\n`,
  );
  return server;
}
