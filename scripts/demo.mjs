#!/usr/bin/env node
// `npm run demo`: the README's first command. A real CCS backup on embedded defaults:
// an application directory under build/demo-home, a local cncopd on 127.0.0.1 (free port)
// with its data under build/demo-home/network, a device and its token in cncop3.ini, a CCS
// job for this repository's docs/, one dispatcher run (cncopagent: backupagentnq +
// backupagentdq + cncopreporter), the cloud listing (cncoprestore --list), then the server
// is stopped and a summary printed. Run it again: the second backup finds nothing changed.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { $, cd, fs, path } from "zx";

const root = path.resolve(import.meta.dirname, "..");
cd(root);
const home = path.join(root, "build", "demo-home");
const data = path.join(home, "network");
const node = process.execPath; // the pinned Node 24 under `npm run`
const main = path.join(root, "src", "cli", "main.ts");
const env = { ...process.env, CNCOP_HOME: home };
$.verbose = false;
const cncop = (args, opts = {}) => $({ env, ...opts })`${node} ${main} ${args}`;
const show = (args) => cncop(args, { stdio: "inherit" });

await cncop(["init", home]);

// The network: a device token, kept in cncop3.ini across demo runs.
const iniPath = path.join(home, "Config", "cncop3.ini");
let ini = fs.readFileSync(iniPath, "utf8");
let token = /^token\s*=\s*(\S+)\s*$/m.exec(ini)?.[1];
if (!token || !fs.existsSync(data)) {
  const name = `demo-${Date.now()}`;
  token = (await cncop(["cncopd", "device", "add", name, "--data", data])).stdout.trim();
}

const server = spawn(
  node,
  [main, "cncopd", "serve", "--listen", "127.0.0.1:0", "--data", data],
  { env, stdio: ["ignore", "pipe", "inherit"] },
);
const stopServer = () =>
  new Promise((resolve) => {
    if (server.exitCode !== null) return resolve();
    server.once("exit", resolve);
    server.kill("SIGTERM");
  });
try {
  const url = await new Promise((resolve, reject) => {
    createInterface({ input: server.stdout }).on("line", (line) => {
      const m = /listening on (\S+)/.exec(line);
      if (m) resolve(m[1]);
    });
    server.once("exit", (code) => reject(new Error(`cncopd exited (${code}) before listening`)));
  });
  console.log(`cncopd listening on ${url} (data in ${data})`);

  // [network] url and token, replacing earlier values, keeping the commented defaults.
  const lines = ini.split("\n").filter((l) => !/^(url|token)\s*=/.test(l));
  const at = lines.findIndex((l) => l.trim() === "[network]");
  if (at < 0) lines.push("[network]", `url = ${url}`, `token = ${token}`);
  else lines.splice(at + 1, 0, `url = ${url}`, `token = ${token}`);
  ini = lines.join("\n");
  fs.writeFileSync(iniPath, ini);

  const list = await cncop(["cncopjobs", "list", "--json"]);
  let job = JSON.parse(list.stdout).jobs.find((j) => j.title === "Demo docs");
  if (!job) {
    await cncop([
      "cncopjobs",
      "add",
      "--title",
      "Demo docs",
      "--type",
      "ccs",
      "--source",
      path.join(root, "docs"),
    ]);
    job = JSON.parse((await cncop(["cncopjobs", "list", "--json"])).stdout).jobs.find((j) =>
      j.title === "Demo docs"
    );
  }

  const t0 = Date.now();
  console.log(`\n$ cncopagent "Demo docs"`);
  await show(["cncopagent", "Demo docs"]);
  const seconds = ((Date.now() - t0) / 1000).toFixed(1);

  console.log(`\n$ cncoprestore ${job.id} --list`);
  const listing = await cncop(["cncoprestore", String(job.id), "--list"]);
  process.stdout.write(listing.stdout);

  const nqLog = fs.readdirSync(path.join(home, "Logs")).filter((f) => /^NQ-/.test(f)).sort().pop();
  const lastPeek = nqLog
    ? fs.readFileSync(path.join(home, "Logs", nqLog), "utf8").split("\n").filter((l) =>
      /PEEK: /.test(l)
    ).pop()
    : undefined;
  console.log("\nSummary");
  console.log(`  backup of ${path.join(root, "docs")} as job ${job.id} in ${seconds} s`);
  if (lastPeek) console.log(`  ${lastPeek.replace(/^.*?PEEK: /, "peek: ")}`);
  console.log(`  application directory: ${home}`);
  console.log(`  logs: ${path.join(home, "Logs")} (read them with 'w NQ', 'w DQ', 'w CA')`);
  console.log(`  cloud data: ${data}`);
} finally {
  await stopServer();
}
