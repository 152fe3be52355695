/**
 * The BackupJob database (`Config/backupjobs.db`): schema, migrations and job records.
 *
 * A job is addressed by id or by title (case-insensitive) everywhere: {@link JobsDb.find}.
 *
 * @module
 */
import type { DatabaseSync, SQLInputValue } from "node:sqlite";
import { openSqlite, transaction, userVersion } from "./sqlite.ts";
import { CncopError, JobNotFoundError, UsageError } from "./errors.ts";

/** Every job type, and the direction each moves data. */
export const jobTypes = {
  CCS: "PUSH",
  CIFS: "PULL",
  FTP: "PULL",
  FTPS: "PULL",
  MSSQL: "PULL",
  SFTP: "PULL",
  RSYNC: "PULL",
  WIMG: "PULL",
} as const;

/** A job type name. */
export type JobType = keyof typeof jobTypes;
/** PULL (copy onto this device) or PUSH (send to the cncop network). */
export type Direction = "PULL" | "PUSH";

/** One backup job. */
export interface Job {
  id: number;
  title: string;
  type: JobType;
  direction: Direction;
  source: string;
  destination: string;
  maxRetries: number;
  prerun: string;
  postrunSuccess: string;
  postrunFailure: string;
  /** Seconds a pre/post command may run. */
  commandTimeout: number;
  deleteCollar: number;
  include: string[];
  exclude: string[];
  retentionDays: number;
  enabled: boolean;
  /** Extra options the dispatcher passes to the job's agent (e.g. `--skipdeletes`). */
  agentArgs: string[];
  /** Type-specific settings (hosts, ports, credentials reference). */
  settings: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

/** The fields a caller sets when adding or editing a job. */
export type JobInput = Partial<Omit<Job, "id" | "direction" | "createdAt" | "updatedAt">>;

/** Defaults for fields a new job does not give. */
export interface JobDefaults {
  maxRetries: number;
  commandTimeout: number;
  deleteCollar: number;
  retentionDays: number;
}

const builtinDefaults: JobDefaults = {
  maxRetries: 3,
  commandTimeout: 3600,
  deleteCollar: 1500,
  retentionDays: 30,
};

/** Schema migrations; index + 1 is the user_version after applying it. */
const migrations: string[] = [
  `CREATE TABLE jobs (
     jobid INTEGER PRIMARY KEY AUTOINCREMENT,
     jobtitle TEXT NOT NULL UNIQUE COLLATE NOCASE,
     jobtype TEXT NOT NULL,
     direction TEXT NOT NULL CHECK (direction IN ('PULL', 'PUSH')),
     source TEXT NOT NULL DEFAULT '',
     destination TEXT NOT NULL DEFAULT '',
     max_retries INTEGER NOT NULL DEFAULT 3,
     prerun TEXT NOT NULL DEFAULT '',
     postrun_success TEXT NOT NULL DEFAULT '',
     postrun_failure TEXT NOT NULL DEFAULT '',
     delete_collar INTEGER NOT NULL DEFAULT 1500,
     include_filters TEXT NOT NULL DEFAULT '[]',
     exclude_filters TEXT NOT NULL DEFAULT '[]',
     retention_days INTEGER NOT NULL DEFAULT 30,
     enabled INTEGER NOT NULL DEFAULT 1,
     agent_args TEXT NOT NULL DEFAULT '[]',
     settings TEXT NOT NULL DEFAULT '{}',
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   )`,
  `ALTER TABLE jobs ADD COLUMN command_timeout INTEGER NOT NULL DEFAULT 3600`,
];

/** The schema version this build writes. */
export const jobsSchemaVersion = migrations.length;

interface Row {
  jobid: number;
  jobtitle: string;
  jobtype: string;
  direction: string;
  source: string;
  destination: string;
  max_retries: number;
  prerun: string;
  postrun_success: string;
  postrun_failure: string;
  command_timeout: number;
  delete_collar: number;
  include_filters: string;
  exclude_filters: string;
  retention_days: number;
  enabled: number;
  agent_args: string;
  settings: string;
  created_at: string;
  updated_at: string;
}

function toJob(r: Row): Job {
  return {
    id: r.jobid,
    title: r.jobtitle,
    type: r.jobtype as JobType,
    direction: r.direction as Direction,
    source: r.source,
    destination: r.destination,
    maxRetries: r.max_retries,
    prerun: r.prerun,
    postrunSuccess: r.postrun_success,
    postrunFailure: r.postrun_failure,
    commandTimeout: r.command_timeout,
    deleteCollar: r.delete_collar,
    include: JSON.parse(r.include_filters) as string[],
    exclude: JSON.parse(r.exclude_filters) as string[],
    retentionDays: r.retention_days,
    enabled: r.enabled === 1,
    agentArgs: JSON.parse(r.agent_args) as string[],
    settings: JSON.parse(r.settings) as Record<string, unknown>,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** Parses a job type in any case. @throws {UsageError} listing the known types. */
export function parseJobType(value: string): JobType {
  const upper = value.toUpperCase();
  if (upper in jobTypes) return upper as JobType;
  throw new UsageError(`unknown job type ${JSON.stringify(value)}`, {
    hint: `known types: ${Object.keys(jobTypes).join(", ")}`,
  });
}

function checkInt(name: string, v: unknown, min: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
    throw new UsageError(`${name} must be a whole number of at least ${min}, not ${String(v)}`);
  }
  return v;
}

function checkStrings(name: string, v: unknown): string[] {
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) {
    throw new UsageError(`${name} must be a list of strings`);
  }
  return v as string[];
}

/** Validates a full job record before it is written. @throws {UsageError} */
export function validateJob(j: Omit<Job, "id" | "createdAt" | "updatedAt">): void {
  const title = j.title.trim();
  if (title === "") throw new UsageError("a job needs a title", { hint: "give --title" });
  if (/^\d+$/.test(title)) {
    throw new UsageError(`job title ${JSON.stringify(title)} is only digits`, {
      hint: "a title must not read as a job id: add a letter",
    });
  }
  // deno-lint-ignore no-control-regex -- control characters are exactly what is refused
  if (/[\x00-\x1f]/.test(title)) throw new UsageError("a job title cannot hold control characters");
  parseJobType(j.type);
  if (j.source.trim() === "") {
    throw new UsageError(`job ${JSON.stringify(title)} needs a source`, { hint: "give --source" });
  }
  checkInt("max retries", j.maxRetries, 0);
  checkInt("command timeout", j.commandTimeout, 1);
  checkInt("delete collar", j.deleteCollar, 0);
  checkInt("retention days", j.retentionDays, 1);
  checkStrings("include filters", j.include);
  checkStrings("exclude filters", j.exclude);
  checkStrings("agent arguments", j.agentArgs);
  if (typeof j.settings !== "object" || j.settings === null || Array.isArray(j.settings)) {
    throw new UsageError("job settings must be a JSON object");
  }
}

/** The BackupJob database. Open with {@link openJobsDb}; close when done. */
export class JobsDb {
  readonly db: DatabaseSync;
  readonly path: string;
  defaults: JobDefaults;

  constructor(db: DatabaseSync, path: string, defaults: JobDefaults) {
    this.db = db;
    this.path = path;
    this.defaults = defaults;
  }

  /** Every job, by id. */
  list(): Job[] {
    return (this.db.prepare("SELECT * FROM jobs ORDER BY jobid").all() as unknown as Row[]).map(
      toJob,
    );
  }

  /** The job with this id or title (case-insensitive), or undefined. */
  tryFind(ref: string | number): Job | undefined {
    const s = String(ref).trim();
    if (/^\d+$/.test(s)) {
      const r = this.db.prepare("SELECT * FROM jobs WHERE jobid = ?").get(Number(s));
      if (r) return toJob(r as unknown as Row);
    }
    const r = this.db.prepare("SELECT * FROM jobs WHERE jobtitle = ? COLLATE NOCASE").get(s);
    return r ? toJob(r as unknown as Row) : undefined;
  }

  /** The job with this id or title. @throws {JobNotFoundError} */
  find(ref: string | number): Job {
    const job = this.tryFind(ref);
    if (!job) throw new JobNotFoundError(String(ref));
    return job;
  }

  /** Adds a job. @throws {UsageError} on invalid fields or a title in use. */
  add(input: JobInput & { title: string; type: JobType; source: string }): Job {
    const now = new Date().toISOString();
    const type = parseJobType(input.type);
    const j = {
      title: input.title.trim(),
      type,
      direction: jobTypes[type],
      source: input.source,
      destination: input.destination ?? "",
      maxRetries: input.maxRetries ?? this.defaults.maxRetries,
      prerun: input.prerun ?? "",
      postrunSuccess: input.postrunSuccess ?? "",
      postrunFailure: input.postrunFailure ?? "",
      commandTimeout: input.commandTimeout ?? this.defaults.commandTimeout,
      deleteCollar: input.deleteCollar ?? this.defaults.deleteCollar,
      include: input.include ?? [],
      exclude: input.exclude ?? [],
      retentionDays: input.retentionDays ?? this.defaults.retentionDays,
      enabled: input.enabled ?? true,
      agentArgs: input.agentArgs ?? [],
      settings: input.settings ?? {},
    };
    validateJob(j);
    this.checkTitleFree(j.title, undefined);
    const cols = columnValues(j);
    const names = Object.keys(cols);
    const res = this.db.prepare(
      `INSERT INTO jobs (${names.join(", ")}, created_at, updated_at)
       VALUES (${names.map(() => "?").join(", ")}, ?, ?)`,
    ).run(...Object.values(cols), now, now);
    return this.find(Number(res.lastInsertRowid));
  }

  /** Changes the given fields of a job. @throws {JobNotFoundError} {UsageError} */
  edit(ref: string | number, changes: JobInput): Job {
    const old = this.find(ref);
    const type = changes.type !== undefined ? parseJobType(changes.type) : old.type;
    const j = { ...old, ...stripUndefined(changes), type, direction: jobTypes[type] };
    j.title = j.title.trim();
    validateJob(j);
    this.checkTitleFree(j.title, old.id);
    const cols = columnValues(j);
    this.db.prepare(
      `UPDATE jobs SET ${Object.keys(cols).map((c) => `${c} = ?`).join(", ")}, updated_at = ?
       WHERE jobid = ?`,
    ).run(...Object.values(cols), new Date().toISOString(), old.id);
    return this.find(old.id);
  }

  /** Removes a job; returns what it was. @throws {JobNotFoundError} */
  remove(ref: string | number): Job {
    const job = this.find(ref);
    this.db.prepare("DELETE FROM jobs WHERE jobid = ?").run(job.id);
    return job;
  }

  /** Runs `fn` in one transaction: all of it lands, or none. */
  transaction<T>(fn: () => T): T {
    return transaction(this.db, fn);
  }

  close(): void {
    if (this.db.isOpen) this.db.close();
  }

  private checkTitleFree(title: string, selfId: number | undefined): void {
    const r = this.db.prepare("SELECT jobid FROM jobs WHERE jobtitle = ? COLLATE NOCASE").get(
      title,
    ) as { jobid: number } | undefined;
    if (r && r.jobid !== selfId) {
      throw new UsageError(`a job titled ${JSON.stringify(title)} already exists (id ${r.jobid})`, {
        hint: "titles are unique regardless of case: choose another",
      });
    }
  }
}

/** The stored columns of a job's fields (everything but id and the timestamps). */
function columnValues(
  j: Omit<Job, "id" | "createdAt" | "updatedAt">,
): Record<string, SQLInputValue> {
  return {
    jobtitle: j.title,
    jobtype: j.type,
    direction: j.direction,
    source: j.source,
    destination: j.destination,
    max_retries: j.maxRetries,
    prerun: j.prerun,
    postrun_success: j.postrunSuccess,
    postrun_failure: j.postrunFailure,
    command_timeout: j.commandTimeout,
    delete_collar: j.deleteCollar,
    include_filters: JSON.stringify(j.include),
    exclude_filters: JSON.stringify(j.exclude),
    retention_days: j.retentionDays,
    enabled: j.enabled ? 1 : 0,
    agent_args: JSON.stringify(j.agentArgs),
    settings: JSON.stringify(j.settings),
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Applies pending migrations in one transaction; returns the version reached. */
export function migrateJobsDb(db: DatabaseSync, path: string): number {
  const current = userVersion(db);
  if (current > migrations.length) {
    throw new CncopError(
      `${path} has schema version ${current}, newer than this cncop (${migrations.length})`,
      { hint: "run a newer cncop, or restore the database from before the upgrade" },
    );
  }
  if (current === migrations.length) return current;
  transaction(db, () => {
    // Re-read inside the write lock: another process may have migrated meanwhile.
    for (let i = userVersion(db); i < migrations.length; i++) db.exec(migrations[i]!);
    db.exec(`PRAGMA user_version = ${migrations.length}`);
  });
  return migrations.length;
}

/** Opens (creating and migrating when needed) the BackupJob database at `path`. */
export function openJobsDb(path: string, defaults: Partial<JobDefaults> = {}): JobsDb {
  let db: DatabaseSync;
  try {
    db = openSqlite(path);
  } catch (err) {
    throw new CncopError(`cannot open the job database ${path}: ${String(err)}`, {
      hint: "check the application directory (cncop init) and its permissions",
      cause: err,
    });
  }
  migrateJobsDb(db, path);
  return new JobsDb(db, path, { ...builtinDefaults, ...defaults });
}
