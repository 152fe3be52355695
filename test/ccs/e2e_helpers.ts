/**
 * Shared set-up of the CCS end-to-end tests: an application home wired to a real cncopd, a
 * CCS job, the real programs as processes, and a loopback TCP proxy that counts the HTTP
 * requests reaching the server.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { join, relative } from "node:path";
import { openJobsDb } from "../../src/core/jobs_db.ts";
import type { HomePaths } from "../../src/core/home.ts";
import type { CncopdHandle } from "../helpers/cncopd.ts";
import { mainTs } from "../helpers/run_cli.ts";
import { tempHome } from "../helpers/tmp.ts";

/** Result of a program run. */
export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `cncop <args>` with CNCOP_HOME = `home`. */
export function cncop(
  home: HomePaths,
  args: string[],
  env: Record<string, string> = {},
): Promise<Run> & { pid: () => number | undefined; kill: (s: NodeJS.Signals) => void } {
  const child = spawn(process.execPath, [mainTs, ...args], {
    env: { ...process.env, CNCOP_HOME: home.home, CNCOP_DQ_GRACE_MS: "3000", ...env },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const p = new Promise<Run>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
  return Object.assign(p, { pid: () => child.pid, kill: (s: NodeJS.Signals) => child.kill(s) });
}

let devices = 0;

/**
 * A home of its own device (a new token from `d`) whose cncop3.ini points at `d` (or at
 * `url`, e.g. a proxy), and one CCS job on `source`.
 */
export async function ccsHome(
  d: CncopdHandle,
  source: string,
  job: { deleteCollar?: number; include?: string[] } = {},
  url: string = d.url,
): Promise<{ home: HomePaths; jobId: number; token: string }> {
  const home = tempHome();
  const token = await d.addDevice(`dev-${process.pid}-${++devices}`);
  writeFileSync(home.configFile, `[network]\nurl = ${url}\ntoken = ${token}\n`);
  const db = openJobsDb(home.jobsDb);
  const j = db.add({ title: "docs", type: "CCS", source, ...job });
  db.close();
  return { home, jobId: j.id, token };
}

/** nq then dq for the job (as a user would run them by hand). */
export async function backup(
  home: HomePaths,
  jobId: number,
  extra: string[] = [],
  env: Record<string, string> = {},
): Promise<{ nq: Run; dq: Run }> {
  const nq = await cncop(home, ["backupagentnq", ...extra, String(jobId)], env);
  const dq = await cncop(home, ["backupagentdq", ...extra, String(jobId)], env);
  return { nq, dq };
}

/** Path -> SHA-256 of every file under `root`. */
export function treeDigest(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        out.set(relative(root, p), createHash("sha256").update(readFileSync(p)).digest("hex"));
      }
    }
  };
  walk(root);
  return out;
}

/** Bytes of the pack files currently in Spool/Work. */
export function packBytes(home: HomePaths): number {
  let n = 0;
  for (const f of readdirSync(home.work)) {
    if (f.endsWith(".pack")) n += statSync(join(home.work, f)).size;
  }
  return n;
}

/** A TCP proxy on loopback in front of `target` that counts HTTP requests. */
export async function countingProxy(targetPort: number): Promise<{
  url: string;
  requests: () => number;
  close: () => Promise<void>;
}> {
  let requests = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    const upstream = connect(targetPort, "127.0.0.1");
    sockets.add(upstream);
    client.on("data", (d: Buffer) => {
      // Counts request lines (a chunk holding a method at a line start).
      requests += (d.toString("latin1").match(/(^|\r\n)(GET|POST|PUT|PATCH|DELETE) \/v1\//g) ??
        []).length;
    });
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => requests,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
