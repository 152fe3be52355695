/**
 * Test homes for the dispatcher: test agents and commands in Bin/, jobs, and runs of the
 * real cncopagent as a process.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { HomePaths } from "../../src/core/home.ts";
import { type Job, type JobInput, type JobType, openJobsDb } from "../../src/core/jobs_db.ts";
import type { Report } from "../../src/core/spool.ts";
import { mainTs } from "./run_cli.ts";
import { tempDir, tempHome } from "./tmp.ts";

const fixtures = fileURLToPath(new URL("../fixtures/agents/", import.meta.url));
/** The test agent script. */
export const fakeAgent = join(fixtures, "fake_agent.mjs");
/** The test pre/post command script. */
export const fakeHook = join(fixtures, "fake_hook.mjs");

/** A home with its own record file and state directory. */
export interface TestHome {
  paths: HomePaths;
  /** Where test agents and commands record each start (one JSON line each). */
  record: string;
  state: string;
  /** Environment for cncopagent runs against this home. */
  env: Record<string, string>;
}

/** Writes an executable `Bin/<name>` that runs `script` with this Node, `prefix` first. */
export function installScript(paths: HomePaths, name: string, script: string, prefix: string[]) {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const file = join(paths.bin, name);
  writeFileSync(
    file,
    `#!/bin/sh\nexec ${[process.execPath, script, ...prefix].map(q).join(" ")} "$@"\n`,
  );
  chmodSync(file, 0o755);
  return file;
}

/** Installs the test agent as `Bin/<name>`. */
export function installAgent(paths: HomePaths, name: string): string {
  return installScript(paths, name, fakeAgent, [name]);
}

/**
 * A fresh home with the test command as `Bin/hook`, test agents as rsyncagent, sftpagent,
 * ftpagent, backupagentnq and backupagentdq, and a recording cncopreporter (exit status
 * from $FAKE_REPORTER_EXIT).
 */
export function testHome(): TestHome {
  const paths = tempHome();
  const dir = tempDir();
  const record = join(dir, "record.jsonl");
  const state = join(dir, "state");
  writeFileSync(record, "");
  installScript(paths, "hook", fakeHook, []);
  for (const a of ["rsyncagent", "sftpagent", "ftpagent", "backupagentnq", "backupagentdq"]) {
    installAgent(paths, a);
  }
  const reporter = join(paths.bin, "cncopreporter");
  writeFileSync(
    reporter,
    `#!/bin/sh
printf '{"name":"cncopreporter","args":"%s","home":"%s"}\\n' "$*" "$CNCOP_HOME" >> "$FAKE_AGENT_LOG"
echo "reporter: $(ls "$CNCOP_HOME/Spool/Messages" | wc -l) report(s) waiting"
exit "\${FAKE_REPORTER_EXIT:-0}"
`,
  );
  chmodSync(reporter, 0o755);
  return {
    paths,
    record,
    state,
    env: {
      CNCOP_HOME: paths.home,
      FAKE_AGENT_LOG: record,
      FAKE_AGENT_STATE: state,
      CNCOP_RETRY_PAUSE_MS: "20",
      CNCOP_KILL_GRACE_MS: "500",
    },
  };
}

/** Adds a job (RSYNC with source /tmp unless given). */
export function addJob(h: TestHome, input: JobInput & { title: string; type?: JobType }): Job {
  const db = openJobsDb(h.paths.jobsDb);
  try {
    return db.add({ source: "/tmp", ...input, type: input.type ?? "RSYNC" });
  } finally {
    db.close();
  }
}

/** Changes fields of a job. */
export function editJob(h: TestHome, id: number, changes: JobInput): Job {
  const db = openJobsDb(h.paths.jobsDb);
  try {
    return db.edit(id, changes);
  } finally {
    db.close();
  }
}

/** One line of the record file. */
export interface Recorded {
  name: string;
  label?: string;
  args: string[] | string;
  pid?: number;
  home?: string;
  session?: string;
  env?: Record<string, string>;
}

/** Everything recorded so far. */
export function records(h: TestHome): Recorded[] {
  return readFileSync(h.record, "utf8").split("\n").filter((l) => l !== "").map((l) =>
    JSON.parse(l) as Recorded
  );
}

/** The reports in Spool/Messages, oldest first, optionally of one kind. */
export function reports(h: TestHome, kind?: string): Report[] {
  return readdirSync(h.paths.messages).filter((n) => n.endsWith(".json")).sort().map((n) =>
    JSON.parse(readFileSync(join(h.paths.messages, n), "utf8")) as Report
  ).filter((r) => kind === undefined || r.kind === kind);
}

/** Result of a cncopagent run. */
export interface AgentRun {
  status: number | null;
  stdout: string;
  stderr: string;
  /** The CA log it wrote (from its `log:` line), and its text. */
  logPath?: string;
  log: string;
}

/** A started cncopagent process. */
export interface RunningAgent {
  pid: number;
  done: Promise<AgentRun>;
  kill(signal: NodeJS.Signals): void;
}

/** Starts `cncopagent <args>` against `h`. */
export function startCncopagent(
  h: TestHome,
  args: string[],
  env: Record<string, string> = {},
): RunningAgent {
  const child = spawn(process.execPath, [mainTs, "cncopagent", ...args], {
    env: { ...process.env, ...h.env, ...env },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const done = new Promise<AgentRun>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (status) => {
      const logPath = /^log: (.*)$/m.exec(stdout)?.[1];
      const log = logPath && existsSync(logPath) ? readFileSync(logPath, "utf8") : "";
      resolve({ status, stdout, stderr, logPath, log });
    });
  });
  return { pid: child.pid!, done, kill: (s) => child.kill(s) };
}

/** Runs `cncopagent <args>` against `h` to its end. */
export function cncopagent(
  h: TestHome,
  args: string[],
  env: Record<string, string> = {},
): Promise<AgentRun> {
  return startCncopagent(h, args, env).done;
}

/** Resolves once `path` exists (polling); rejects after `ms`. */
export async function waitForFile(path: string, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!existsSync(path)) {
    if (Date.now() > until) throw new Error(`${path} did not appear`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** True while process `pid` exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
