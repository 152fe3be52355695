#!/usr/bin/env node
// Benchmarks of the CCS agent against restic and rclone (Debian packages) on the
// linux-source-6.1 tree: initial backup, a no-change run, and the rename of drivers/net
// (against `rclone sync --track-renames`, which verifies by hash). Never part of the tests.
// Needs: apt-get install linux-source-6.1 restic rclone (and GNU time at /usr/bin/time).
//
//   node_modules/.bin/node bench/ccs.mjs [--write] [--dir DIR] [--keep] [--million] [--sources]
//
// --write replaces the "## CCS agent" section of bench/RESULTS.md with this run's table.
// --million also runs bench/ccs_million.mjs (peak memory of a 1M-file peek, a few minutes).
// cncop runs as the single executable the release ships (built first, about 10 s), or from
// the sources with --sources.
// The load average is sampled before each timed step; the table gives the range.
import { $, fs, os, path } from "zx";
import { arg, args, cncopCommand, loads, node, repo, startCncopd, timed } from "./_common.mjs";
import { writeResultsSection } from "./_results.mjs";

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

// ---- cncop: a local cncopd, a home, one CCS job
const home = path.join(work, "home");
const data = path.join(work, "cncopd");
const env = { CNCOP_HOME: home };
const [exe, ...lead] = await cncopCommand(path.join(work, "sea"));
const cncop = (a) => $({ env: { ...process.env, ...env } })`${exe} ${lead} ${a}`;
await cncop(["init", home]);
const token = (await cncop(["cncopd", "device", "add", "bench", "--data", data])).stdout.trim();
const server = await startCncopd(data, home, token, [exe, ...lead]);
await cncop(["cncopjobs", "add", "--title", "linux", "--type", "ccs", "--source", tree]);
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

const rows = [];
const row = (what, cncopV, peerV, ratio, target, ok) => {
  rows.push({ what, cncopV, peerV, ratio, target, ok });
  console.log(`${what}: ${cncopV} | ${peerV} | ${ratio} | ${target} ${ok}`);
};
const s = (x) => `${x.toFixed(2)} s`;
try {
  console.log("cncop: initial backup ...");
  const cInit = await agent();
  console.log("cncop: no-change run ...");
  const cSame = await agent();
  const nqSame = await program("backupagentnq");

  // ---- restic to a local repository
  const rEnv = { RESTIC_PASSWORD: "bench", RESTIC_REPOSITORY: path.join(work, "restic") };
  await timed("restic", ["init"], rEnv);
  console.log("restic: initial backup ...");
  const rInit = await timed("restic", ["backup", "--quiet", tree], rEnv);
  console.log("restic: no-change run ...");
  const rSame = await timed("restic", ["backup", "--quiet", tree], rEnv);

  // ---- rclone to a local directory, then the rename
  const dst = path.join(work, "rclone");
  console.log("rclone: initial sync ...");
  await timed("rclone", ["sync", "-q", tree, dst]);
  await fs.rename(path.join(tree, "drivers", "net"), path.join(tree, "drivers", "net-2026"));
  const netFiles = Number(
    (await $`find ${path.join(tree, "drivers", "net-2026")} -type f | wc -l`).stdout.trim(),
  );
  console.log("cncop: rename of drivers/net (cncopagent) ...");
  const cRenameRun = await agent();
  const cRename = cRenameRun.secs;
  const renameBytes = await sentBytes();
  console.log("rclone: sync --track-renames ...");
  const rcRename = await timed("rclone", ["sync", "-q", "--track-renames", tree, dst]);
  // And back, by hand: the enqueuer, then the dequeuer (the pack is measured between them).
  await fs.rename(path.join(tree, "drivers", "net-2026"), path.join(tree, "drivers", "net"));
  console.log("cncop: rename back (backupagentnq, then backupagentdq) ...");
  const nq = await program("backupagentnq");
  const backBytes = await packBytes();
  const dq = await program("backupagentdq");
  const cBack = nq.secs + dq.secs;
  console.log(`rename back: nq ${s(nq.secs)}, dq ${s(dq.secs)}, ${backBytes} pack bytes`);
  const rcBack = await timed("rclone", ["sync", "-q", "--track-renames", tree, dst]);

  const ratio = (a, b) => `${(a / b).toFixed(2)}x`;
  row(
    `initial backup, ${files} files, ${(bytes / 1e6).toFixed(0)} MB`,
    s(cInit.secs),
    `restic ${s(rInit.secs)}`,
    ratio(cInit.secs, rInit.secs),
    "<= 1x",
    cInit.secs <= rInit.secs ? "met" : "missed",
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
    s(cRename),
    `rclone --track-renames ${s(rcRename.secs)}`,
    ratio(cRename, rcRename.secs),
    "<= 0.5x",
    cRename <= 0.5 * rcRename.secs ? "met" : "missed",
  );
  row(
    "rename back, backupagentnq + backupagentdq by hand",
    `${s(cBack)} (${s(nq.secs)} + ${s(dq.secs)})`,
    `rclone --track-renames ${s(rcBack.secs)}`,
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
  const peak = Math.max(cInit.rssMb, cSame.rssMb, cRenameRun.rssMb, nq.rssMb, dq.rssMb);
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
  server.kill("SIGTERM");
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
  `Machine: ${machine}. Produced by \`node bench/ccs.mjs --write\` (one run each; cncop`,
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
