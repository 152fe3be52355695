/**
 * The application directory (CNCOP_HOME): where it is, and the paths inside it.
 *
 * Resolution: the `CNCOP_HOME` environment variable, else the directory above the `Bin/`
 * that holds the running executable.
 *
 * @module
 */
import { basename, dirname, join, resolve } from "node:path";
import { CncopError } from "./errors.ts";

/** Paths inside an application directory, as DESIGN.md lays it out. */
export interface HomePaths {
  home: string;
  bin: string;
  config: string;
  configFile: string;
  jobsDb: string;
  logs: string;
  spool: string;
  messages: string;
  work: string;
  spoolLogs: string;
}

/** The paths of the application directory `home`. */
export function homePaths(home: string): HomePaths {
  const root = resolve(home);
  return {
    home: root,
    bin: join(root, "Bin"),
    config: join(root, "Config"),
    configFile: join(root, "Config", "cncop3.ini"),
    jobsDb: join(root, "Config", "backupjobs.db"),
    logs: join(root, "Logs"),
    spool: join(root, "Spool"),
    messages: join(root, "Spool", "Messages"),
    work: join(root, "Spool", "Work"),
    spoolLogs: join(root, "Spool", "Logs"),
  };
}

/** True when running as a Node single executable application. */
export function isSingleExecutable(): boolean {
  try {
    const getBuiltin = (process as { getBuiltinModule?: (id: string) => unknown })
      .getBuiltinModule;
    const sea = getBuiltin?.("node:sea") as { isSea?: () => boolean } | undefined;
    return sea?.isSea?.() ?? false;
  } catch {
    return false;
  }
}

/** The path of the running executable (the SEA binary, or the script under a runtime). */
export function executablePath(): string {
  if (isSingleExecutable()) return process.execPath;
  return resolve(process.env.CNCOP_ARGV0 ?? process.argv[1] ?? process.execPath);
}

/**
 * Finds the application directory.
 *
 * @throws {CncopError} when neither CNCOP_HOME is set nor the executable sits in a `Bin/`.
 */
export function resolveHome(env: Record<string, string | undefined> = process.env): string {
  const fromEnv = env.CNCOP_HOME;
  if (fromEnv !== undefined && fromEnv !== "") return resolve(fromEnv);
  const exeDir = dirname(executablePath());
  if (basename(exeDir).toLowerCase() === "bin") return dirname(exeDir);
  throw new CncopError("no application directory", {
    hint: "set CNCOP_HOME, or run the executable from its Bin/ (create one with 'cncop init DIR')",
  });
}
