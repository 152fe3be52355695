/**
 * A job database as the first release (schema version 1) wrote it, for upgrade tests.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";

/** Writes a v1 job database at `path` holding one CCS job titled "Legacy" with source /old. */
export function writeV1JobsDb(path: string): void {
  const old = new DatabaseSync(path);
  old.exec(`CREATE TABLE jobs (
     jobid INTEGER PRIMARY KEY AUTOINCREMENT, jobtitle TEXT NOT NULL UNIQUE COLLATE NOCASE,
     jobtype TEXT NOT NULL, direction TEXT NOT NULL, source TEXT NOT NULL DEFAULT '',
     destination TEXT NOT NULL DEFAULT '', max_retries INTEGER NOT NULL DEFAULT 3,
     prerun TEXT NOT NULL DEFAULT '', postrun_success TEXT NOT NULL DEFAULT '',
     postrun_failure TEXT NOT NULL DEFAULT '', delete_collar INTEGER NOT NULL DEFAULT 1500,
     include_filters TEXT NOT NULL DEFAULT '[]', exclude_filters TEXT NOT NULL DEFAULT '[]',
     retention_days INTEGER NOT NULL DEFAULT 30, enabled INTEGER NOT NULL DEFAULT 1,
     agent_args TEXT NOT NULL DEFAULT '[]', settings TEXT NOT NULL DEFAULT '{}',
     created_at TEXT NOT NULL, updated_at TEXT NOT NULL)`);
  old.exec(`INSERT INTO jobs (jobtitle, jobtype, direction, source, created_at, updated_at)
            VALUES ('Legacy', 'CCS', 'PUSH', '/old', 'x', 'x')`);
  old.exec("PRAGMA user_version = 1");
  old.close();
}
