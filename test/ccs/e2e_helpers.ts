/**
 * Shared set-up of the CCS end-to-end tests: an application home wired to a real cncopd, a
 * CCS job, the real programs as processes, and what the server's request log says a program
 * asked it.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { openJobsDb } from "../../src/core/jobs_db.ts";
import type { HomePaths } from "../../src/core/home.ts";
import type { CncopdHandle } from "../helpers/cncopd.ts";
import { mainTs } from "../helpers/run_cli.ts";
import { tempHome } from "../helpers/tmp.ts";

/** Result of a program run. */
/** Agent environment for a network that is down: give up fast instead of retrying. */
export const fast = { CNCOP_NETWORK_RETRIES: "1", CNCOP_NETWORK_BACKOFF_MS: "50" };

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
): Promise<{ home: HomePaths; jobId: number; token: string; device: string }> {
  const home = tempHome();
  const device = `dev-${process.pid}-${++devices}`;
  const token = await d.addDevice(device);
  writeFileSync(home.configFile, `[network]\nurl = ${url}\ntoken = ${token}\n`);
  const db = openJobsDb(home.jobsDb);
  const j = db.add({ title: "docs", type: "CCS", source, ...job });
  db.close();
  return { home, jobId: j.id, token, device };
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

/** The server's request log, every daily file, oldest first (docs/network-api.md). */
export function requestLog(d: CncopdHandle): string[] {
  const dir = join(d.dataDir, "logs");
  const files = readdirSync(dir).filter((f) => /^requests-.*\.log$/.test(f)).sort();
  return files.flatMap((f) => readFileSync(join(dir, f), "utf8").split("\n")).filter((l) => l);
}

let markers = 0;

/** Asks the server for a path only this call uses and waits for its request log line. */
async function mark(d: CncopdHandle, token: string): Promise<string> {
  const path = `/v1/jobs/test-marker-${process.pid}-${++markers}`;
  const r = await fetch(d.url + path, { headers: { authorization: `Bearer ${token}` } });
  await r.text();
  // The line is written once the answer is complete, which may be just after we read it.
  for (let i = 0; i < 500; i++) {
    const lines = requestLog(d);
    const at = lines.findIndex((l) => l.split(" ")[3] === path);
    if (at >= 0) return path;
    await new Promise((res) => setTimeout(res, 10));
  }
  throw new Error(`${path} never reached the request log`);
}

/**
 * The request log lines of `device` while `fn` ran: `fn` runs between two marker requests
 * made with `token`, and every line of the device between the markers is returned.
 */
export async function requestsDuring(
  d: CncopdHandle,
  device: string,
  token: string,
  fn: () => Promise<void>,
): Promise<string[]> {
  const first = await mark(d, token);
  await fn();
  const last = await mark(d, token);
  const lines = requestLog(d);
  const from = lines.findIndex((l) => l.split(" ")[3] === first);
  const to = lines.findIndex((l) => l.split(" ")[3] === last);
  return lines.slice(from + 1, to).filter((l) => l.split(" ")[1] === device);
}

/**
 * Writes `count` small files `name(i)` (relative to `root`, content `content(i)`), creating
 * each directory once.
 */
export function writeFiles(
  root: string,
  count: number,
  name: (i: number) => string,
  content: (i: number) => string | Buffer,
): void {
  const made = new Set<string>();
  for (let i = 0; i < count; i++) {
    const p = join(root, name(i));
    const dir = join(p, "..");
    if (!made.has(dir)) {
      mkdirSync(dir, { recursive: true });
      made.add(dir);
    }
    writeFileSync(p, content(i));
  }
}
