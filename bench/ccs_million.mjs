#!/usr/bin/env node
// Peak memory of the CCS agent on a tree of a million files (target: no cncop process above
// 200 MB). Generates the tree (100 x 100 directories of 100 small files), then against a
// local cncopd: `backupagentnq -n` with an empty cloud (a dry run: walk, cloud listing,
// diff, plan of 1M ADDs, rolled back), the real first backup through `cncopagent` (enqueuer
// and dequeuer), and `backupagentnq -n` again with the full cloud (the peek streams a
// 1M-entry listing and finds nothing changed). Peak RSS of backupagentnq comes
// from GNU time (%M), cncopd's from /proc (VmHWM). Never part of the tests.
//
//   node_modules/.bin/node bench/ccs_million.mjs [--dir DIR] [--files N] [--keep] [--sources]
//
// cncop runs as the single executable (built first), or from the sources with --sources.
// The tree is kept in DIR/tree between runs (it takes a minute or two to create).
import { readFileSync } from "node:fs";
import { $, fs, os, path } from "zx";
import { arg, args, cncopCommand, startCncopd, timed } from "./_common.mjs";
const work = arg("--dir", path.join(os.tmpdir(), "cncop-bench-million"));
const want = Number(arg("--files", "1000000"));
if ((await $`command -v /usr/bin/time`.nothrow()).exitCode !== 0) {
  console.error("/usr/bin/time missing: apt-get install time");
  process.exit(1);
}

// ---- the tree: d000..d099/s00..s99/f000..f099 (fewer top directories for --files < 1M)
const tree = path.join(work, "tree");
const marker = path.join(work, `tree-${want}.done`);
if (!(await fs.pathExists(marker))) {
  await fs.rm(work, { recursive: true, force: true });
  console.log(`creating ${want} files in ${tree} ...`);
  const t = Date.now();
  let n = 0;
  outer: for (let d = 0; d < 1000; d++) {
    for (let s = 0; s < 100; s++) {
      const dir = path.join(
        tree,
        `d${String(d).padStart(3, "0")}`,
        `s${String(s).padStart(2, "0")}`,
      );
      fs.mkdirSync(dir, { recursive: true });
      for (let f = 0; f < 100; f++) {
        if (n >= want) break outer;
        fs.writeFileSync(path.join(dir, `f${String(f).padStart(3, "0")}.txt`), `file ${n}\n`);
        n++;
      }
    }
  }
  await fs.writeFile(marker, String(n));
  console.log(`${n} files in ${((Date.now() - t) / 1000).toFixed(0)} s`);
}
for (const d of ["home", "cncopd"]) {
  await fs.rm(path.join(work, d), { recursive: true, force: true });
}

// ---- a home, a cncopd, one CCS job
const home = path.join(work, "home");
const data = path.join(work, "cncopd");
const env = { ...process.env, CNCOP_HOME: home };
const [exe, ...lead] = await cncopCommand(path.join(work, "sea"));
const cncop = (a) => $({ env })`${exe} ${lead} ${a}`;
await cncop(["init", home]);
const token = (await cncop(["cncopd", "device", "add", "bench", "--data", data])).stdout.trim();
await cncop(["cncopjobs", "add", "--title", "million", "--type", "ccs", "--source", tree]);

const startServer = () => startCncopd(data, home, token, [exe, ...lead]);
const hwmMb = (pid) => {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
};

/** backupagentnq -n under GNU time: wall seconds, peak RSS (MB) and its PEEK log line. */
async function dryRun() {
  const r = await timed(exe, [...lead, "backupagentnq", "-n", "million"], env);
  const logDir = path.join(home, "Logs");
  const logs = (await fs.readdir(logDir)).filter((f) => f.startsWith("NQ-")).sort();
  const log = await fs.readFile(path.join(logDir, logs[logs.length - 1]), "utf8");
  const peek = log.split("\n").filter((l) => l.includes("PEEK: ")).pop() ?? "";
  return { secs: r.secs, rssMb: r.rssMb, peek };
}

const results = [];
let backup;
let server = await startServer();
try {
  console.log("backupagentnq -n, empty cloud ...");
  const a = await dryRun();
  results.push({
    what: "empty cloud (plans every file as ADD)",
    ...a,
    serverMb: hwmMb(server.pid),
  });
  console.log(`  ${a.secs.toFixed(1)} s, ${a.rssMb.toFixed(0)} MB\n  ${a.peek}`);

  // The real first backup: cncopagent runs the enqueuer and the dequeuer against cncopd.
  // GNU time's %M is the largest process of the dispatcher's tree.
  console.log("cncopagent: first backup of every file ...");
  const full = await timed(exe, [...lead, "cncopagent", "million"], env);
  const fullSecs = full.secs;
  backup = { secs: fullSecs, rssMb: full.rssMb, serverMb: hwmMb(server.pid) };
  console.log(
    `  ${fullSecs.toFixed(1)} s, largest agent ${backup.rssMb.toFixed(0)} MB, cncopd ${
      backup.serverMb.toFixed(0)
    } MB`,
  );
  server.kill("SIGTERM");
  await new Promise((r) => server.once("exit", r));
  server = await startServer();
  console.log("backupagentnq -n, full cloud (after the first backup) ...");
  const b = await dryRun();
  results.push({
    what: "full cloud (1M-entry listing after the first backup, nothing changed)",
    ...b,
    serverMb: hwmMb(server.pid),
  });
  console.log(`  ${b.secs.toFixed(1)} s, ${b.rssMb.toFixed(0)} MB\n  ${b.peek}`);
} finally {
  server.kill("SIGTERM");
}

const files = Number(await fs.readFile(marker, "utf8"));
console.log(
  `\n${files} files; load average ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}\n` +
    "| backupagentnq -n | time | peak RSS nq | peak RSS cncopd | target |\n| --- | --- | --- | --- | --- |",
);
for (const r of results) {
  const peak = Math.max(r.rssMb, r.serverMb);
  console.log(
    `| ${r.what} | ${r.secs.toFixed(1)} s | ${r.rssMb.toFixed(0)} MB | ${
      r.serverMb.toFixed(0)
    } MB | ${peak <= 200 ? "met" : "missed"} (<= 200 MB) |`,
  );
}
console.log(
  `| cncopagent first backup (nq + dq) | ${backup.secs.toFixed(1)} s | ${
    backup.rssMb.toFixed(0)
  } MB (largest agent) | ${backup.serverMb.toFixed(0)} MB | ${
    Math.max(backup.rssMb, backup.serverMb) <= 200 ? "met" : "missed"
  } (<= 200 MB) |`,
);
// For bench/ccs.mjs --million.
console.log(
  "RESULT " + JSON.stringify({
    files,
    nqMb: Math.max(...results.map((r) => r.rssMb)),
    cncopdMb: Math.max(...results.map((r) => r.serverMb), backup.serverMb),
    backupMb: backup.rssMb,
    backupSecs: backup.secs,
    secs: results.map((r) => r.secs),
  }),
);
if (!args.includes("--keep")) {
  for (const d of ["home", "cncopd"]) {
    await fs.rm(path.join(work, d), { recursive: true, force: true });
  }
}
