/**
 * What every program starts from: the application directory, its settings and its log.
 *
 * @module
 */
import { type CncopConfig, loadConfig } from "./config.ts";
import { resolveHome } from "./home.ts";
import type { HomePaths } from "./home.ts";
import { requireHome } from "./app_dir.ts";
import { type JobsDb, openJobsDb } from "./jobs_db.ts";
import { type Logger, type LogStyle, openLog } from "./log.ts";

/** Options every program takes. */
export interface CommonOptions {
  /** `-c CONFIG`: another cncop3.ini. */
  config?: string;
  /** `-d`: diagnostic logging to Spool/Logs. */
  debug?: boolean;
}

/** A program's view of its application directory. */
export interface AppContext {
  paths: HomePaths;
  config: CncopConfig;
  /** Opens the job database with the configured defaults; the caller closes it. */
  openJobs(): JobsDb;
  /** Opens this program's log. */
  openLog(prefix: string, style: LogStyle, program: string, echo?: boolean): Logger;
}

/** Resolves the home, checks it and reads the settings (`-c` wins over Config/cncop3.ini). */
export function appContext(options: CommonOptions = {}): AppContext {
  const paths = requireHome(resolveHome());
  const config = loadConfig({ configPath: options.config, home: paths.home });
  return {
    paths,
    config,
    openJobs: () => openJobsDb(paths.jobsDb, config.defaults),
    openLog: (prefix, style, program, echo) =>
      openLog({
        dir: paths.logs,
        prefix,
        style,
        program,
        echo,
        debugDir: options.debug ? paths.spoolLogs : undefined,
      }),
  };
}
