/**
 * Creating and checking an application directory.
 *
 * @module
 */
import { existsSync, mkdirSync, statSync } from "node:fs";
import { CncopError, errnoCode } from "./errors.ts";
import { writeFileAtomic } from "./atomic.ts";
import { defaultConfigText } from "./config.ts";
import { type HomePaths, homePaths } from "./home.ts";
import { openJobsDb } from "./jobs_db.ts";

/** What {@link initHome} did. */
export interface InitResult {
  paths: HomePaths;
  /** Directories and files it created (empty when everything was there). */
  created: string[];
}

/**
 * Creates, or completes, the application directory `dir`: Bin/, Config/cncop3.ini with
 * commented defaults, Config/backupjobs.db, Logs/, Spool/Messages/, Spool/Work/,
 * Spool/Logs/. Never changes what exists (the job database is only migrated).
 */
export function initHome(dir: string): InitResult {
  const paths = homePaths(dir);
  if (existsSync(paths.home) && !statSync(paths.home).isDirectory()) {
    throw new CncopError(`${paths.home} exists and is not a directory`, {
      hint: "choose another path for the application directory",
    });
  }
  const created: string[] = [];
  for (
    const d of [
      paths.home,
      paths.bin,
      paths.config,
      paths.logs,
      paths.spool,
      paths.messages,
      paths.work,
      paths.spoolLogs,
    ]
  ) {
    if (!existsSync(d)) {
      try {
        mkdirSync(d, { recursive: true });
      } catch (err) {
        throw new CncopError(`cannot create ${d}: ${errnoCode(err) ?? String(err)}`, {
          hint: "check the permissions of its parent",
          cause: err,
        });
      }
      created.push(d);
    }
  }
  if (!existsSync(paths.configFile)) {
    writeFileAtomic(paths.configFile, defaultConfigText());
    created.push(paths.configFile);
  }
  const hadDb = existsSync(paths.jobsDb);
  openJobsDb(paths.jobsDb).close();
  if (!hadDb) created.push(paths.jobsDb);
  return { paths, created };
}

/**
 * Checks that `home` is an application directory a program can work in.
 *
 * @throws {CncopError} naming what is missing and how to make it.
 */
export function requireHome(home: string): HomePaths {
  const paths = homePaths(home);
  for (const d of [paths.config, paths.logs, paths.work, paths.messages]) {
    if (!existsSync(d)) {
      throw new CncopError(`${paths.home} is not a complete application directory (no ${d})`, {
        hint: `run 'cncop init ${paths.home}'`,
      });
    }
  }
  return paths;
}
