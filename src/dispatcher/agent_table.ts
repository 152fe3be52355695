/**
 * The agent of each job type, and where its program is found.
 *
 * A new job type is one entry in {@link agentTable}. An agent program is, in order:
 * 1. an executable file `Bin/<name>` (`Bin/<name>.exe` on Windows) of the application
 *    directory: the packaged release puts the multi-call executable there under every
 *    program name, and tests put test agents there;
 * 2. else the program of the same name built into this executable (src/cli/programs.ts);
 * 3. else there is no agent: the job ends as ERROR.
 *
 * @module
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import type { Job, JobType } from "../core/jobs_db.ts";
import { programs } from "../cli/programs.ts";
import { type Launch, selfLaunch } from "./self_exec.ts";

/** How the dispatcher runs the agent of one job type. */
export interface AgentSpec {
  /** Programs started together with the same command line (CCS: the enqueuer). */
  programs: readonly string[];
  /**
   * A program with the same command line started only when the work database has something
   * for it to send (CCS: the dequeuer, once the enqueuer made a pack ready), so a run that
   * changed nothing costs one process start, not two.
   */
  onDemand?: string;
  /** Arguments placed before the job's own agent arguments. */
  leadingArgs?: readonly string[];
  /** Platforms (`process.platform`) the agent exists on; all when absent. */
  platforms?: readonly string[];
}

/** Job type -> agent. */
export const agentTable: Record<JobType, AgentSpec> = {
  CCS: { programs: ["backupagentnq"], onDemand: "backupagentdq" },
  CIFS: { programs: ["cifsagent"] },
  FTP: { programs: ["ftpagent"], leadingArgs: ["--type", "FTP"] },
  FTPS: { programs: ["ftpagent"], leadingArgs: ["--type", "FTPS"] },
  MSSQL: { programs: ["mssqlagent"] },
  SFTP: { programs: ["sftpagent"] },
  RSYNC: { programs: ["rsyncagent"] },
  WIMG: { programs: ["wimgagent"], platforms: ["win32"] },
};

/** Options every agent gets from the dispatcher's own command line. */
export interface AgentCommonArgs {
  debug?: boolean;
  /** Absolute path of the `-c` cncop3.ini. */
  config?: string;
}

/** The agent arguments for `job`: `[-d] [-c CONFIG] <leading> <job agentArgs...> <job id>`. */
export function agentArgs(job: Job, spec: AgentSpec, common: AgentCommonArgs): string[] {
  return [
    ...(common.debug ? ["-d"] : []),
    ...(common.config ? ["-c", common.config] : []),
    ...(spec.leadingArgs ?? []),
    ...job.agentArgs,
    String(job.id),
  ];
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * Finds program `name`: `Bin/<name>`, else the built-in program; undefined when neither.
 *
 * @example
 * ```ts
 * const l = findProgram(paths.bin, "cncopreporter", ["-d"]);
 * ```
 */
export function findProgram(binDir: string, name: string, args: string[]): Launch | undefined {
  const candidates = process.platform === "win32" ? [`${name}.exe`] : [name];
  for (const c of candidates) {
    const file = join(binDir, c);
    if (isFile(file)) return { file, args, env: {} };
  }
  if (name in programs) return selfLaunch(name, args);
  return undefined;
}

/** The launches of `job`'s agent, or why there is none. */
export type AgentPlan =
  | {
    ok: true;
    launches: { name: string; launch: Launch }[];
    onDemand?: { name: string; launch: Launch };
  }
  | { ok: false; message: string };

/** Plans the agent run of `job` on this platform. */
export function planAgent(binDir: string, job: Job, common: AgentCommonArgs): AgentPlan {
  const spec = agentTable[job.type];
  const unavailable = (why: string): AgentPlan => ({
    ok: false,
    message: `no agent for type ${job.type} on this platform (${why})`,
  });
  if (!spec) return unavailable("unknown type");
  if (spec.platforms && !spec.platforms.includes(process.platform)) {
    return unavailable(`${spec.programs.join(" + ")} runs on ${spec.platforms.join(", ")} only`);
  }
  const args = agentArgs(job, spec, common);
  const launches: { name: string; launch: Launch }[] = [];
  for (const name of spec.programs) {
    const launch = findProgram(binDir, name, args);
    if (!launch) return unavailable(`${name} is neither in ${binDir} nor built in`);
    launches.push({ name, launch });
  }
  if (spec.onDemand) {
    const name = spec.onDemand;
    const launch = findProgram(binDir, name, args);
    if (!launch) return unavailable(`${name} is neither in ${binDir} nor built in`);
    return { ok: true, launches, onDemand: { name, launch } };
  }
  return { ok: true, launches };
}
