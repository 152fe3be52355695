/**
 * The SQLite catalog of the cncop network (`catalog.db`, WAL): devices, jobs, file versions,
 * uploads, applied packs and reports. Every change is one transaction; a version row is
 * committed only after its blob is durable (see apply.ts).
 *
 * A version is a state of a path valid from `created_at` until `ended_at` (null: current).
 * The tree at time T is every row with `created_at <= T < ended_at`.
 *
 * Each job has a listing tag, a random token every applied pack renews (a catalog restored
 * from a copy or made again never repeats a tag a client holds). It so a client that kept the listing (and folded its own packs into
 * it) can ask whether anything else changed instead of reading the whole listing again.
 *
 * @module
 */
import { randomUUID } from "node:crypto";
import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";
import { hasColumn, migrateOnce, openSqlite, transaction } from "../core/sqlite.ts";

/** A registered device. */
export interface DeviceRow {
  id: number;
  name: string;
  created_at: number;
  revoked_at: number | null;
}

/** A job, owned by one device. */
export interface JobRow {
  id: number;
  device_id: number;
  job_key: string;
  retention_days: number;
  created_at: number;
}

/** One version of one path. */
export interface VersionRow {
  id: number;
  job_id: number;
  path: string;
  size: number;
  mtime_ns: string;
  mode: number;
  hash: string;
  created_at: number;
  ended_at: number | null;
  /** 1 when the version ended because the path was deleted (or moved away). */
  deleted: number;
}

/** An upload of a pack file. */
export interface UploadRow {
  job_id: number;
  upload_key: string;
  size: number;
  state: "open" | "applied" | "rejected";
  result: string | null;
  created_at: number;
}

/** A stored report. */
export interface ReportRow {
  id: number;
  type: string;
  report_key: string;
  body: string;
  received_at: number;
}

/** Metadata of a new version. */
export interface NewVersion {
  path: string;
  size: number;
  mtimeNs: string;
  mode: number;
  hash: string;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS devices (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  token_hash TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY,
  device_id INTEGER NOT NULL REFERENCES devices(id),
  job_key TEXT NOT NULL,
  retention_days INTEGER NOT NULL DEFAULT 30,
  created_at INTEGER NOT NULL,
  UNIQUE (device_id, job_key)
);
CREATE TABLE IF NOT EXISTS versions (
  id INTEGER PRIMARY KEY,
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  path TEXT NOT NULL,
  size INTEGER NOT NULL,
  mtime_ns TEXT NOT NULL,
  mode INTEGER NOT NULL,
  hash TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  ended_at INTEGER,
  deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS versions_path ON versions (job_id, path, ended_at);
CREATE TABLE IF NOT EXISTS uploads (
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  upload_key TEXT NOT NULL,
  size INTEGER NOT NULL,
  state TEXT NOT NULL DEFAULT 'open',
  result TEXT,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (job_id, upload_key)
);
CREATE TABLE IF NOT EXISTS applied_packs (
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  sha256 TEXT NOT NULL,
  result TEXT NOT NULL,
  applied_at INTEGER NOT NULL,
  PRIMARY KEY (job_id, sha256)
);
CREATE TABLE IF NOT EXISTS reports (
  id INTEGER PRIMARY KEY,
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  type TEXT NOT NULL,
  report_key TEXT NOT NULL,
  body TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  UNIQUE (job_id, report_key)
);
CREATE TABLE IF NOT EXISTS catalog_meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
PRAGMA user_version = 1;
`;

const CURRENT = "ended_at IS NULL";

/** The WHERE clause (and its parameters) of a job's tree at a time, under a prefix. */
function treeWhere(
  jobId: number,
  options: { prefix?: string; at?: number },
): { where: string; params: SQLInputValue[] } {
  const params: SQLInputValue[] = [jobId];
  let where = "job_id = ?";
  if (options.at === undefined) where += ` AND ${CURRENT}`;
  else {
    where += " AND created_at <= ? AND (ended_at IS NULL OR ended_at > ?)";
    params.push(options.at, options.at);
  }
  if (options.prefix) {
    const p = options.prefix.replace(/\/+$/, "");
    // length() in SQL: SQLite counts characters where JS counts UTF-16 units.
    where += " AND (path = ? OR substr(path, 1, length(?)) = ?)";
    params.push(p, p + "/", p + "/");
  }
  return { where, params };
}

/** The catalog. One per data directory; several processes may open it (WAL). */
export class Catalog {
  readonly db: DatabaseSync;
  #last = 0;
  #instance: string;

  constructor(path: string) {
    this.db = openSqlite(path);
    this.db.exec("PRAGMA foreign_keys = ON;");
    this.db.exec(SCHEMA);
    // No index by hash: each new version paid a random insert into it (most of a folder
    // move's commit), for the one reader that needs it, prune, which now scans instead.
    this.db.exec("DROP INDEX IF EXISTS versions_hash");
    // Catalogs made before listing tags get the column (checked again under the write lock:
    // two processes may open an old catalog at once).
    migrateOnce(
      this.db,
      () => hasColumn(this.db, "jobs", "listing_tag"),
      () => this.db.exec("ALTER TABLE jobs ADD COLUMN listing_tag TEXT"),
    );
    // A catalog made again from nothing must not answer a tag of the old one.
    this.db.prepare("INSERT OR IGNORE INTO catalog_meta (key, value) VALUES ('instance', ?)")
      .run(randomUUID());
    this.#instance = (this.db.prepare(
      "SELECT value FROM catalog_meta WHERE key = 'instance'",
    ).get() as { value: string }).value;
    const row = this.db.prepare(
      "SELECT max(coalesce(max(created_at), 0), coalesce(max(ended_at), 0)) AS t FROM versions",
    ).get() as { t: number };
    this.#last = row.t;
  }

  close(): void {
    this.db.close();
  }

  /** A strictly increasing millisecond clock, so versions applied in order never tie. */
  now(): number {
    this.#last = Math.max(Date.now(), this.#last + 1);
    return this.#last;
  }

  /** Runs `fn` in one IMMEDIATE transaction. */
  tx<T>(fn: () => T): T {
    return transaction(this.db, fn);
  }

  // Prepared once per SQL text: a pack of thousands of entries runs the same few statements.
  #stmts = new Map<string, StatementSync>();
  #stmt(sql: string): StatementSync {
    let s = this.#stmts.get(sql);
    if (!s) this.#stmts.set(sql, s = this.db.prepare(sql));
    return s;
  }
  #get<T>(sql: string, ...params: SQLInputValue[]): T | undefined {
    return this.#stmt(sql).get(...params) as T | undefined;
  }
  #all<T>(sql: string, ...params: SQLInputValue[]): T[] {
    return this.#stmt(sql).all(...params) as T[];
  }
  #run(sql: string, ...params: SQLInputValue[]) {
    return this.#stmt(sql).run(...params);
  }

  // --- devices ---

  addDevice(name: string, tokenHash: string): number {
    const r = this.#run(
      "INSERT INTO devices (name, token_hash, created_at) VALUES (?, ?, ?)",
      name,
      tokenHash,
      Date.now(),
    );
    return Number(r.lastInsertRowid);
  }
  listDevices(): DeviceRow[] {
    return this.#all("SELECT id, name, created_at, revoked_at FROM devices ORDER BY id");
  }
  deviceByName(name: string): DeviceRow | undefined {
    return this.#get("SELECT id, name, created_at, revoked_at FROM devices WHERE name = ?", name);
  }
  /** The live (not revoked) device holding a token hash. */
  deviceByToken(tokenHash: string): DeviceRow | undefined {
    return this.#get(
      "SELECT id, name, created_at, revoked_at FROM devices WHERE token_hash = ? AND revoked_at IS NULL",
      tokenHash,
    );
  }
  revokeDevice(name: string): boolean {
    return this.#run(
      "UPDATE devices SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
      Date.now(),
      name,
    ).changes > 0;
  }

  // --- jobs ---

  job(deviceId: number, key: string): JobRow | undefined {
    return this.#get("SELECT * FROM jobs WHERE device_id = ? AND job_key = ?", deviceId, key);
  }
  /** The job, created (owned by the device) when missing. */
  ensureJob(deviceId: number, key: string): JobRow {
    this.#run(
      "INSERT OR IGNORE INTO jobs (device_id, job_key, created_at) VALUES (?, ?, ?)",
      deviceId,
      key,
      Date.now(),
    );
    return this.job(deviceId, key)!;
  }
  jobsOf(deviceId: number): JobRow[] {
    return this.#all("SELECT * FROM jobs WHERE device_id = ? ORDER BY job_key", deviceId);
  }
  allJobs(): JobRow[] {
    return this.#all("SELECT * FROM jobs");
  }
  setRetention(jobId: number, days: number): void {
    this.#run("UPDATE jobs SET retention_days = ? WHERE id = ?", days, jobId);
  }
  /**
   * The tag of the job's current listing: it changes whenever a pack is applied to the job.
   * Read it before the listing's point in time, so a tag never claims a pack the listing
   * lacks (a pack applied in between makes the tag older than the listing: only a wasted
   * full listing next time).
   */
  listingTag(jobId: number): string {
    const r = this.#get<{ listing_tag: string | null }>(
      "SELECT listing_tag FROM jobs WHERE id = ?",
      jobId,
    );
    // A job no pack changed yet (or from before tags): the catalog's own, per job.
    return r?.listing_tag ?? `${this.#instance}.${jobId}`;
  }
  /** Inside a pack's transaction: renews the job's listing tag; the tags before and after. */
  renewListingTag(jobId: number): { before: string; after: string } {
    const before = this.listingTag(jobId);
    const after = randomUUID();
    this.#run("UPDATE jobs SET listing_tag = ? WHERE id = ?", after, jobId);
    return { before, after };
  }

  // --- versions ---

  /**
   * Current versions (or those valid at `at`), sorted by path, optionally under a prefix.
   * Read in pages of `page` rows, so no statement stays open while a caller awaits; give
   * `at` for a listing that stays consistent across pages while packs are applied.
   */
  *tree(
    jobId: number,
    options: { prefix?: string; at?: number; page?: number } = {},
  ): Iterable<VersionRow> {
    const { where, params } = treeWhere(jobId, options);
    const page = options.page ?? 1000;
    const stmt = this.db.prepare(
      `SELECT * FROM versions WHERE ${where} AND path > ? ORDER BY path LIMIT ${page}`,
    );
    let after = "";
    for (;;) {
      const rows = stmt.all(...params, after) as unknown as VersionRow[];
      yield* rows;
      if (rows.length < page) return;
      after = rows[rows.length - 1]!.path;
    }
  }
  /**
   * The listing of {@link tree} as NDJSON text (the fields of the network's file listing),
   * one string per page of `page` lines, built by SQLite: a million-file listing makes a
   * thousand strings in JS, not a million row objects, which kept cncopd near 250 MB.
   */
  *treeNdjson(
    jobId: number,
    options: { prefix?: string; at?: number; page?: number } = {},
  ): Iterable<{ text: string; last: string; lines: number }> {
    const { where, params } = treeWhere(jobId, options);
    const page = options.page ?? 2000;
    const stmt = this.db.prepare(
      `SELECT count(*) AS lines, max(path) AS last,
         group_concat(json_object('path', path, 'size', size, 'mtimeNs', mtime_ns,
           'mode', mode, 'hash', hash, 'version', id, 'created', created_at) || char(10), ''
           ORDER BY path) AS text
       FROM (SELECT * FROM versions WHERE ${where} AND path > ? ORDER BY path LIMIT ${page})`,
    );
    let after = "";
    for (;;) {
      const r = stmt.get(...params, after) as { lines: number; last: string | null; text: string };
      if (r.lines > 0) yield { text: r.text, last: r.last!, lines: r.lines };
      if (r.lines < page) return;
      after = r.last!;
    }
  }
  /** Every version of a path, newest first. */
  versionsOf(jobId: number, path: string): VersionRow[] {
    return this.#all(
      "SELECT * FROM versions WHERE job_id = ? AND path = ? ORDER BY created_at DESC, id DESC",
      jobId,
      path,
    );
  }
  version(jobId: number, id: number): VersionRow | undefined {
    return this.#get("SELECT * FROM versions WHERE job_id = ? AND id = ?", jobId, id);
  }
  current(jobId: number, path: string): VersionRow | undefined {
    return this.#get(
      `SELECT * FROM versions WHERE job_id = ? AND path = ? AND ${CURRENT}`,
      jobId,
      path,
    );
  }
  /** Inside a transaction: ends the current version of a path (if any). */
  endVersion(id: number, at: number, deleted: boolean): void {
    this.#run(
      "UPDATE versions SET ended_at = ?, deleted = ? WHERE id = ?",
      at,
      deleted ? 1 : 0,
      id,
    );
  }
  /** Inside a transaction: makes `v` the current version of its path. */
  putVersion(jobId: number, v: NewVersion, at: number): number {
    const old = this.current(jobId, v.path);
    if (old) this.endVersion(old.id, at, false);
    const r = this.#run(
      `INSERT INTO versions (job_id, path, size, mtime_ns, mode, hash, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
      jobId,
      v.path,
      v.size,
      v.mtimeNs,
      v.mode,
      v.hash,
      at,
    );
    return Number(r.lastInsertRowid);
  }
  /**
   * Inside a transaction: moves every current version under folder `from` to the same
   * relative path under `to`, as {@link endVersion} and {@link putVersion} row by row would
   * (the old rows end as deleted, current rows at the new paths end replaced), in three
   * statements: the new versions get consecutive ids in the byte order of the old paths.
   */
  moveFolder(jobId: number, from: string, to: string, at: number): [number, number] | undefined {
    const lo = `${from}/`;
    const hi = `${from}0`; // "0" follows "/": the range is everything under from/
    this.db.exec(
      `CREATE TEMP TABLE IF NOT EXISTS folder_move (id INTEGER, path TEXT, size INTEGER,
         mtime_ns TEXT, mode INTEGER, hash TEXT)`,
    );
    this.db.exec("DELETE FROM temp.folder_move");
    const n = Number(
      this.#run(
        `INSERT INTO temp.folder_move (id, path, size, mtime_ns, mode, hash)
         SELECT id, ? || substr(path, length(?) + 1), size, mtime_ns, mode, hash FROM versions
         WHERE job_id = ? AND path >= ? AND path < ? AND ${CURRENT} ORDER BY path`,
        to,
        from, // length() in SQL: SQLite counts characters, JS UTF-16 units (😀 is 2)
        jobId,
        lo,
        hi,
      ).changes,
    );
    if (n === 0) return undefined;
    this.#run(
      "UPDATE versions SET ended_at = ?, deleted = 1 WHERE id IN (SELECT id FROM temp.folder_move)",
      at,
    );
    this.#run(
      `UPDATE versions SET ended_at = ?, deleted = 0
       WHERE job_id = ? AND ${CURRENT} AND path IN (SELECT path FROM temp.folder_move)`,
      at,
      jobId,
    );
    const r = this.#run(
      `INSERT INTO versions (job_id, path, size, mtime_ns, mode, hash, created_at)
       SELECT ?, path, size, mtime_ns, mode, hash, ? FROM temp.folder_move ORDER BY rowid`,
      jobId,
      at,
    );
    this.db.exec("DELETE FROM temp.folder_move");
    const last = Number(r.lastInsertRowid);
    return [last - n + 1, last];
  }
  /** Inside a transaction: ends every current version under folder `path` as deleted. */
  deleteFolder(jobId: number, path: string, at: number): number {
    return Number(
      this.#run(
        `UPDATE versions SET ended_at = ?, deleted = 1
         WHERE job_id = ? AND path >= ? AND path < ? AND ${CURRENT}`,
        at,
        jobId,
        `${path}/`,
        `${path}0`,
      ).changes,
    );
  }
  /**
   * Which of `blobs` (device, hash) some version still references: one scan of the versions
   * per call (there is no index by hash), so give a few thousand at a time.
   */
  referencedAmong(blobs: { device: number; hash: string }[]): Set<string> {
    const out = new Set<string>();
    if (blobs.length === 0) return out;
    this.db.exec(
      `CREATE TEMP TABLE IF NOT EXISTS prune_batch (device_id INTEGER, hash TEXT,
         PRIMARY KEY (device_id, hash)) WITHOUT ROWID`,
    );
    // A deferred transaction: writing only the temp table takes no lock on the catalog, so
    // the serving process's commits are not held up by the scan.
    this.db.exec("BEGIN");
    try {
      this.db.exec("DELETE FROM temp.prune_batch");
      const ins = this.#stmt("INSERT OR IGNORE INTO temp.prune_batch VALUES (?, ?)");
      for (const b of blobs) ins.run(b.device, b.hash);
      // CROSS JOIN keeps this order: the versions once, each probing the batch.
      const rows = this.#all<{ device_id: number; hash: string }>(
        `SELECT DISTINCT b.device_id, b.hash FROM versions v CROSS JOIN jobs j
           CROSS JOIN temp.prune_batch b
         WHERE j.id = v.job_id AND b.device_id = j.device_id AND b.hash = v.hash`,
      );
      for (const r of rows) out.add(`${r.device_id}:${r.hash}`);
      this.db.exec("DELETE FROM temp.prune_batch");
      this.db.exec("COMMIT");
    } catch (err) {
      this.db.exec("ROLLBACK");
      throw err;
    }
    return out;
  }
  /** Every (device, hash) a version references. */
  *referencedBlobs(): Iterable<{ device_id: number; hash: string; size: number }> {
    const stmt = this.db.prepare(
      `SELECT DISTINCT j.device_id AS device_id, v.hash AS hash, v.size AS size
       FROM versions v JOIN jobs j ON j.id = v.job_id`,
    );
    for (const row of stmt.iterate()) {
      yield row as unknown as { device_id: number; hash: string; size: number };
    }
  }
  /** Deletes versions whose end is older than their job's retention; returns how many. */
  pruneVersions(now: number): number {
    return Number(
      this.#run(
        `DELETE FROM versions WHERE ended_at IS NOT NULL AND ended_at <
           ? - 86400000 * (SELECT retention_days FROM jobs WHERE jobs.id = versions.job_id)`,
        now,
      ).changes,
    );
  }

  // --- packs and uploads ---

  appliedPack(jobId: number, sha256: string): string | undefined {
    return this.#get<{ result: string }>(
      "SELECT result FROM applied_packs WHERE job_id = ? AND sha256 = ?",
      jobId,
      sha256,
    )?.result;
  }
  recordPack(jobId: number, sha256: string, result: string): void {
    this.#run(
      "INSERT INTO applied_packs (job_id, sha256, result, applied_at) VALUES (?, ?, ?, ?)",
      jobId,
      sha256,
      result,
      Date.now(),
    );
  }
  upload(jobId: number, key: string): UploadRow | undefined {
    return this.#get("SELECT * FROM uploads WHERE job_id = ? AND upload_key = ?", jobId, key);
  }
  createUpload(jobId: number, key: string, size: number): void {
    this.#run(
      "INSERT OR IGNORE INTO uploads (job_id, upload_key, size, created_at) VALUES (?, ?, ?, ?)",
      jobId,
      key,
      size,
      Date.now(),
    );
  }
  deleteUpload(jobId: number, key: string): void {
    this.#run("DELETE FROM uploads WHERE job_id = ? AND upload_key = ?", jobId, key);
  }
  finishUpload(jobId: number, key: string, state: "applied" | "rejected", result: string): void {
    this.#run(
      "UPDATE uploads SET state = ?, result = ? WHERE job_id = ? AND upload_key = ?",
      state,
      result,
      jobId,
      key,
    );
  }
  /** Every upload still open (being sent, or abandoned by its client). */
  openUploads(): UploadRow[] {
    return this.#all("SELECT * FROM uploads WHERE state = 'open' ORDER BY job_id, upload_key");
  }
  /** Forgets an upload if it is still open (an expired one); false when it is not. */
  expireUpload(jobId: number, key: string): boolean {
    return this.#run(
      "DELETE FROM uploads WHERE job_id = ? AND upload_key = ? AND state = 'open'",
      jobId,
      key,
    ).changes > 0;
  }
  /** Forgets finished uploads older than `before` (ms). */
  pruneUploads(before: number): number {
    return Number(
      this.#run("DELETE FROM uploads WHERE state != 'open' AND created_at < ?", before).changes,
    );
  }

  // --- reports ---

  addReport(jobId: number, type: string, key: string, body: string): boolean {
    return this.#run(
      "INSERT OR IGNORE INTO reports (job_id, type, report_key, body, received_at) VALUES (?, ?, ?, ?, ?)",
      jobId,
      type,
      key,
      body,
      Date.now(),
    ).changes > 0;
  }
  reports(jobId: number, type?: string): ReportRow[] {
    return type
      ? this.#all(
        "SELECT id, type, report_key, body, received_at FROM reports WHERE job_id = ? AND type = ? ORDER BY id",
        jobId,
        type,
      )
      : this.#all(
        "SELECT id, type, report_key, body, received_at FROM reports WHERE job_id = ? ORDER BY id",
        jobId,
      );
  }
}
