/**
 * SQLite as every cncop database uses it: `node:sqlite` in WAL mode, a busy timeout so
 * several programs can share a file, and all-or-nothing transactions.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";

/** Options of {@link openSqlite}. */
export interface SqliteOptions {
  /** How long a writer waits for another one. @default 10000 */
  busyTimeoutMs?: number;
  /** `FULL` for data that must survive a power cut. @default "FULL" */
  synchronous?: "FULL" | "NORMAL";
}

/** Opens (creating when needed) a database in WAL mode. */
export function openSqlite(path: string, options: SqliteOptions = {}): DatabaseSync {
  const db = new DatabaseSync(path);
  try {
    db.exec(`PRAGMA busy_timeout = ${options.busyTimeoutMs ?? 10000}`);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec(`PRAGMA synchronous = ${options.synchronous ?? "FULL"}`);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

/**
 * Runs `fn` in one `BEGIN IMMEDIATE` transaction: all of it lands, or none (rolled back
 * when `fn` throws).
 */
export function transaction<T>(db: DatabaseSync, fn: () => T): T {
  db.exec("BEGIN IMMEDIATE");
  try {
    const out = fn();
    db.exec("COMMIT");
    return out;
  } catch (err) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw err;
  }
}

/** The schema version kept in `PRAGMA user_version`. */
export function userVersion(db: DatabaseSync): number {
  return (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version;
}

/** Whether `table` has `column` (generated columns included). */
export function hasColumn(db: DatabaseSync, table: string, column: string): boolean {
  // table_xinfo: table_info hides generated columns.
  return (db.prepare(`PRAGMA table_xinfo(${table})`).all() as { name: string }[]).some((c) =>
    c.name === column
  );
}

/**
 * Runs the schema change `apply` unless `done()`: checked again under the write lock, since
 * several programs may open an older database at once.
 */
export function migrateOnce(db: DatabaseSync, done: () => boolean, apply: () => void): void {
  if (done()) return;
  transaction(db, () => {
    if (!done()) apply();
  });
}
