/**
 * Runs cncop programs as real processes (the pinned Node on `src/cli/main.ts`).
 *
 * @module
 */
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The multi-call entry point. */
export const mainTs = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));

/** Result of {@link runCli}. */
export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `cncop <args>` synchronously with extra environment. */
export function runCli(args: string[], env: Record<string, string | undefined> = {}): CliResult {
  const res = spawnSync(process.execPath, [mainTs, ...args], {
    env: { ...process.env, ...env },
    encoding: "utf8",
  });
  return { status: res.status, stdout: res.stdout, stderr: res.stderr };
}

/** Runs `cncop <args>` asynchronously. */
export function runCliAsync(
  args: string[],
  env: Record<string, string | undefined> = {},
): Promise<CliResult> {
  return runProcess(process.execPath, [mainTs, ...args], { env: { ...process.env, ...env } });
}

/** Runs `file args` (any program) and collects its output; `timeout` kills it. */
export function runProcess(
  file: string,
  args: string[],
  options: { env?: Record<string, string | undefined>; cwd?: string; timeout?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, options);
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}
