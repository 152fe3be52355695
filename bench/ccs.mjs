#!/usr/bin/env node
// Benchmarks of the CCS agent against restic and rclone (Debian packages) on the
// linux-source-6.1 tree: initial backup, a no-change run, and the rename of drivers/net
// (against `rclone sync --track-renames`, which verifies by hash). Never part of the tests.
// Needs: apt-get install linux-source-6.1 restic rclone (and GNU time at /usr/bin/time).
//
//   node_modules/.bin/node bench/ccs.mjs [--write] [--dir DIR] [--keep] [--million] [--sources]
//     [--reps N]
//
// --write replaces the "## CCS agent" section of bench/RESULTS.md with this run's table.
// --reps N: first backups and renames run N times each (default 3), interleaved with their
// peer's, and the medians are compared.
// --million also runs bench/ccs_million.mjs (peak memory of a 1M-file peek, a few minutes).
// cncop runs as the single executable the release ships (built first, about 10 s), or from
// the sources with --sources.
// The load average is sampled before each timed step; the table gives the range.
import { $, fs, os, path } from "zx";
import {
  arg,
  args,
  cncopCommand,
  cpuSecs,
  loads,
  node,
  repo,
  startCncopd,
  timed,
} from "./_common.mjs";
import { writeResultsSection } from "./_results.mjs";
import { FORK_NAME } from "../src/ccs/file_state.ts";
import { native } from "../src/native/mod.ts";

const WRITE = args.includes("--write");
const work = arg("--dir", path.join(os.tmpdir(), "cncop-bench-ccs"));
const tarball = "/usr/src/linux-source-6.1.tar.xz";
for (const tool of ["restic", "rclone", "/usr/bin/time"]) {
  if ((await $`command -v ${tool}`.nothrow()).exitCode !== 0) {
    console.error(`${tool} missing: apt-get install restic rclone time`);
    process.exit(1);
  }
}
if (!(await fs.pathExists(tarball))) {
  console.error(`${tarball} missing: apt-get install linux-source-6.1`);
  process.exit(1);
}

await fs.rm(work, { recursive: true, force: true });
await fs.mkdirp(work);
// A private copy of the addon: a rebuild of native/ during the run must not pull the code
// out from under running processes.
const addon = path.join(repo, "native", "cncop_native.node");
if (await fs.pathExists(addon)) {
  process.env.CNCOP_NATIVE_PATH = path.join(work, "cncop_native.node");
  await fs.copy(addon, process.env.CNCOP_NATIVE_PATH);
}
const tree = path.join(work, "tree");
await fs.mkdirp(tree);
console.log("unpacking linux-source-6.1 ...");
await $`tar -xJf ${tarball} -C ${tree} --strip-components=1`;
const files = Number((await $`find ${tree} -type f | wc -l`).stdout.trim());
const bytes = Number((await $`du -sb ${tree}`).stdout.split(/\s/)[0]);
console.log(`${files} files, ${(bytes / 1e6).toFixed(0)} MB`);

// ---- cncop: a local cncopd, a home, one CCS job. The machine is shared and its speed
// drifts by 20-50% within minutes, so the first backups of cncop and restic are run
// REPS times, interleaved, each from nothing, and the medians compared.
const REPS = Number(arg("--reps", "3"));
const [exe, ...lead] = await cncopCommand(path.join(work, "sea"));
let home, data, env, server;
const cncop = (a) => $({ env: { ...process.env, ...env } })`${exe} ${lead} ${a}`;
/** Removes the forks a backup left on the tree's files (the state cncop keeps on them). */
const stripForks = async () => {
  for (const e of await fs.readdir(tree, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) native.forkRemove(path.join(e.parentPath, e.name), FORK_NAME);
  }
};
/** A new home and cncopd (the previous one stopped), with the one CCS job. */
const freshCncop = async (i) => {
  if (server) {
    const gone = new Promise((res) => server.once("exit", res));
    server.kill("SIGTERM");
    await gone;
    await fs.rm(data, { recursive: true, force: true });
    await fs.rm(home, { recursive: true, force: true });
    // The forks the last backup left on the files go too: each run starts from nothing.
    await stripForks();
  }
  home = path.join(work, `home${i}`);
  data = path.join(work, `cncopd${i}`);
  env = { CNCOP_HOME: home };
  await cncop(["init", home]);
  const token = (await cncop(["cncopd", "device", "add", "bench", "--data", data])).stdout.trim();
  server = await startCncopd(data, home, token, [exe, ...lead]);
  await cncop(["cncopjobs", "add", "--title", "linux", "--type", "ccs", "--source", tree]);
};
const program = (name, extra = []) => timed(exe, [...lead, name, ...extra, "linux"], env);
const agent = (extra = []) => program("cncopagent", extra);
/** Pack bytes the dequeuer's last run sent (its log's job line). */
const sentBytes = async () => {
  const logs = (await fs.readdir(path.join(home, "Logs"))).filter((f) => f.startsWith("DQ-"));
  const text = await fs.readFile(path.join(home, "Logs", logs.sort().at(-1)), "utf8");
  const m = [...text.matchAll(/applied, (\d+) bytes sent/g)].at(-1);
  return m ? Number(m[1]) : NaN;
};
const packBytes = async () => {
  let n = 0;
  for (const f of await fs.readdir(path.join(home, "Spool", "Work"))) {
    if (f.endsWith(".pack")) n += (await fs.stat(path.join(home, "Spool", "Work", f))).size;
  }
  return n;
};
/** The median of `runs` by time (the middle one, or the faster of the two middle ones). */
const median = (runs) =>
  [...runs].sort((a, b) => a.secs - b.secs)[Math.floor((runs.length - 1) / 2)];
const all = (runs) => runs.map((r) => r.secs.toFixed(1)).join(", ");

const rows = [];
const row = (what, cncopV, peerV, ratio, target, ok) => {
  rows.push({ what, cncopV, peerV, ratio, target, ok });
  console.log(`${what}: ${cncopV} | ${peerV} | ${ratio} | ${target} ${ok}`);
};
const s = (x) => `${x.toFixed(2)} s`;
try {
  const rEnv = { RESTIC_PASSWORD: "bench", RESTIC_REPOSITORY: "" };
  const cInits = [];
  const rInits = [];
  for (let i = 0; i < REPS; i++) {
    console.log(`cncop: initial backup ${i + 1}/${REPS} ...`);
    await freshCncop(i);
    // CPU: the agents (cncopagent waits for the enqueuer and dequeuer) and cncopd.
    const before = cpuSecs(server.pid);
    const run = await agent();
    cInits.push({ ...run, cpu: run.cpu + cpuSecs(server.pid) - before });
    // ---- restic to a local repository, each time a new one
    console.log(`restic: initial backup ${i + 1}/${REPS} ...`);
    await fs.rm(rEnv.RESTIC_REPOSITORY || path.join(work, "restic"), {
      recursive: true,
      force: true,
    });
    rEnv.RESTIC_REPOSITORY = path.join(work, `restic${i}`);
    await timed("restic", ["init"], rEnv);
    rInits.push(await timed("restic", ["backup", "--quiet", tree], rEnv));
  }
  const cInit = median(cInits);
  const rInit = median(rInits);
  console.log("cncop: no-change run ...");
  const cSame = await agent();
  const nqSame = await program("backupagentnq");
  console.log("restic: no-change run ...");
  const rSame = await timed("restic", ["backup", "--quiet", tree], rEnv);

  // ---- rclone to a local directory, then the rename of drivers/net and back, REPS times
  const dst = path.join(work, "rclone");
  console.log("rclone: initial sync ...");
  await timed("rclone", ["sync", "-q", tree, dst]);
  const net = path.join(tree, "drivers", "net");
  const moved = path.join(tree, "drivers", "net-2026");
  const netFiles = Number((await $`find ${net} -type f | wc -l`).stdout.trim());
  const cRenames = [], rcRenames = [], cBacks = [], rcBacks = [];
  let renameBytes = 0, backBytes = 0;
  for (let i = 0; i < REPS; i++) {
    await fs.rename(net, moved);
    console.log(`cncop: rename of drivers/net (cncopagent) ${i + 1}/${REPS} ...`);
    cRenames.push(await agent());
    renameBytes = Math.max(renameBytes, await sentBytes());
    console.log("rclone: sync --track-renames ...");
    rcRenames.push(await timed("rclone", ["sync", "-q", "--track-renames", tree, dst]));
    // And back, by hand: the enqueuer, then the dequeuer (the pack is measured between them).
    await fs.rename(moved, net);
    console.log(`cncop: rename back (backupagentnq, then backupagentdq) ${i + 1}/${REPS} ...`);
    const nq = await program("backupagentnq");
    backBytes = Math.max(backBytes, await packBytes());
    const dq = await program("backupagentdq");
    cBacks.push({ secs: nq.secs + dq.secs, nq, dq });
    console.log(`rename back: nq ${s(nq.secs)}, dq ${s(dq.secs)}, ${backBytes} pack bytes`);
    rcBacks.push(await timed("rclone", ["sync", "-q", "--track-renames", tree, dst]));
  }
  const cRenameRun = median(cRenames);
  const cRename = cRenameRun.secs;
  const rcRename = median(rcRenames);
  const back = median(cBacks);
  const { nq, dq } = back;
  const cBack = back.secs;
  const rcBack = median(rcBacks);

  const ratio = (a, b) => `${(a / b).toFixed(2)}x`;
  row(
    `initial backup, ${files} files, ${(bytes / 1e6).toFixed(0)} MB`,
    `${s(cInit.secs)} (${all(cInits)})`,
    `restic ${s(rInit.secs)} (${all(rInits)})`,
    ratio(cInit.secs, rInit.secs),
    "<= 1x",
    cInit.secs <= rInit.secs ? "met" : "missed",
  );
  // CPU is steadier than wall time on a shared machine: the medians of all the runs.
  const midCpu = (runs) =>
    [...runs].map((r) => r.cpu).sort((a, b) => a - b)[(runs.length - 1) >> 1];
  row(
    "CPU of the initial backup (user + system; cncop: agents and cncopd), median",
    `${s(midCpu(cInits))}`,
    `restic ${s(midCpu(rInits))}`,
    ratio(midCpu(cInits), midCpu(rInits)),
    "",
    "info",
  );
  row(
    "no-change run (cncopagent: nq, reporter; no dq needed)",
    s(cSame.secs),
    `restic ${s(rSame.secs)}`,
    ratio(cSame.secs, rSame.secs),
    "<= 0.2x",
    cSame.secs <= 0.2 * rSame.secs ? "met" : "missed",
  );
  row(
    "no-change run, backupagentnq alone",
    s(nqSame.secs),
    `restic ${s(rSame.secs)}`,
    ratio(nqSame.secs, rSame.secs),
    "<= 0.2x",
    nqSame.secs <= 0.2 * rSame.secs ? "met" : "missed",
  );
  row(
    `rename drivers/net (${netFiles} files), cncopagent`,
    `${s(cRename)} (${all(cRenames)})`,
    `rclone --track-renames ${s(rcRename.secs)} (${all(rcRenames)})`,
    ratio(cRename, rcRename.secs),
    "<= 0.5x",
    cRename <= 0.5 * rcRename.secs ? "met" : "missed",
  );
  row(
    "rename back, backupagentnq + backupagentdq by hand",
    `${s(cBack)} (${s(nq.secs)} + ${s(dq.secs)}; ${all(cBacks)})`,
    `rclone --track-renames ${s(rcBack.secs)} (${all(rcBacks)})`,
    ratio(cBack, rcBack.secs),
    "<= 0.5x",
    cBack <= 0.5 * rcBack.secs ? "met" : "missed",
  );
  row(
    "pack data sent for the rename; for the rename back",
    `${renameBytes} bytes; ${backBytes} bytes`,
    "",
    "",
    "<= 1 KB",
    Math.max(renameBytes, backBytes) <= 1024 ? "met" : "missed",
  );
  const peak = Math.max(
    ...[...cInits, cSame, ...cRenames].map((r) => r.rssMb),
    ...cBacks.flatMap((b) => [b.nq.rssMb, b.dq.rssMb]),
  );
  row(
    `peak RSS of any cncop agent, ${files} files`,
    `${peak.toFixed(0)} MB`,
    `restic ${rInit.rssMb.toFixed(0)} MB`,
    "",
    "(the target is for 1M files)",
    "info",
  );
  if (args.includes("--million")) {
    console.log("1M files: bench/ccs_million.mjs ...");
    const m = await $({ nothrow: true })`${node} ${path.join(repo, "bench", "ccs_million.mjs")}`;
    const line = m.stdout.split("\n").find((l) => l.startsWith("RESULT "));
    if (!line) throw new Error(`ccs_million.mjs failed: ${m.stderr}`);
    const r = JSON.parse(line.slice(7));
    const top = Math.max(r.nqMb, r.cncopdMb, r.backupMb);
    row(
      `peak RSS, ${r.files} files: first backup (largest agent); peek (backupagentnq -n); cncopd`,
      `${r.backupMb.toFixed(0)} MB; ${r.nqMb.toFixed(0)} MB; ${r.cncopdMb.toFixed(0)} MB`,
      `first backup ${r.backupSecs.toFixed(0)} s`,
      "",
      "<= 200 MB",
      top <= 200 ? "met" : "missed",
    );
  }
} finally {
  server?.kill("SIGTERM");
}

const machine = `${os.cpus()[0]?.model ?? "?"} x${os.cpus().length}, ${
  (os.totalmem() / 2 ** 30).toFixed(1)
} GiB, Node ${process.version}, restic ${(await $`restic version`).stdout.split(" ")[1]}, rclone ${
  (await $`rclone version`).stdout.split("\n")[0].split(" ")[1]
}, ${new Date().toISOString().slice(0, 10)}, load average ${Math.min(...loads).toFixed(1)}-${
  Math.max(...loads).toFixed(1)
} during the timed steps`;
const table = [
  "## CCS agent",
  "",
  `Machine: ${machine}. Produced by \`node bench/ccs.mjs --write\` (first backups and renames: median of ${REPS} interleaved runs each, all runs in brackets; no-change runs: one each; cncop`,
  `as ${
    exe === node ? "Node on the sources (--sources)" : "the single executable"
  } through \`cncopagent\` against a local \`cncopd\` on loopback, restic to a local`,
  "repository, rclone to a local directory).",
  "",
  "| measure | cncop | peer | ratio | target | |",
  "| --- | --- | --- | --- | --- | --- |",
  ...rows.map((r) =>
    `| ${r.what} | ${r.cncopV} | ${r.peerV} | ${r.ratio} | ${r.target} | ${r.ok} |`
  ),
  "",
].join("\n");
console.log("\n" + table);
if (WRITE) console.log(`wrote ${writeResultsSection(repo, "## CCS agent", table)}`);
if (!args.includes("--keep")) await fs.rm(work, { recursive: true, force: true });
