/**
 * Import, export and display of BackupJob records (the work behind `cncopjobs`).
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { CncopError, errnoCode, UsageError } from "./errors.ts";
import type { Job, JobInput, JobsDb, JobType } from "./jobs_db.ts";

/** Version of the export format. */
export const exportFormat = "cncop-jobs/1";

/** The JSON document `cncopjobs export` writes. */
export function exportJobs(jobs: Job[]): string {
  const records = jobs.map(({ createdAt: _c, updatedAt: _u, direction: _d, ...rest }) => rest);
  return JSON.stringify({ format: exportFormat, jobs: records }, null, 2) + "\n";
}

const importable = new Set([
  "id",
  "title",
  "type",
  "source",
  "destination",
  "maxRetries",
  "prerun",
  "postrunSuccess",
  "postrunFailure",
  "commandTimeout",
  "deleteCollar",
  "include",
  "exclude",
  "retentionDays",
  "enabled",
  "agentArgs",
  "settings",
]);

/** Reads and checks an export document. @throws {CncopError} naming the file and record. */
export function readJobsFile(
  file: string,
): Array<JobInput & { title: string; type: JobType; source: string }> {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    const why = errnoCode(err) ?? (err instanceof Error ? err.message : String(err));
    throw new CncopError(`cannot read jobs from ${file}: ${why}`, {
      hint: "give a file written by 'cncopjobs export'",
      cause: err,
    });
  }
  const d = doc as { format?: unknown; jobs?: unknown };
  if (typeof d !== "object" || d === null || d.format !== exportFormat || !Array.isArray(d.jobs)) {
    throw new CncopError(`${file} is not a cncop jobs export (format ${exportFormat})`, {
      hint: "give a file written by 'cncopjobs export'",
    });
  }
  return d.jobs.map((rec: unknown, i: number) => {
    if (typeof rec !== "object" || rec === null || Array.isArray(rec)) {
      throw new CncopError(`${file}: job #${i + 1} is not an object`);
    }
    for (const key of Object.keys(rec)) {
      if (!importable.has(key)) {
        throw new CncopError(`${file}: job #${i + 1} has unknown field '${key}'`);
      }
    }
    const r = rec as Record<string, unknown>;
    if (typeof r.title !== "string" || typeof r.type !== "string" || typeof r.source !== "string") {
      throw new CncopError(`${file}: job #${i + 1} needs title, type and source strings`);
    }
    const { id: _id, ...input } = r;
    return input as JobInput & { title: string; type: JobType; source: string };
  });
}

/** What an import did. */
export interface ImportResult {
  added: Job[];
  updated: Job[];
}

/**
 * Imports jobs in one transaction: a job whose title exists is updated (with `replace`),
 * else refused; new titles are added. Nothing lands unless every record is valid.
 */
export function importJobs(
  db: JobsDb,
  records: Array<JobInput & { title: string; type: JobType; source: string }>,
  replace: boolean,
): ImportResult {
  return db.transaction(() => {
    const out: ImportResult = { added: [], updated: [] };
    for (const rec of records) {
      const existing = db.tryFind(rec.title);
      // Titles are never all digits (validateJob), so this looks up by title only.
      if (existing) {
        if (!replace) {
          throw new UsageError(`a job titled ${JSON.stringify(rec.title)} already exists`, {
            hint: "give --replace to update existing jobs from the file",
          });
        }
        out.updated.push(db.edit(existing.id, rec));
      } else {
        out.added.push(db.add(rec));
      }
    }
    return out;
  });
}

/** One line per job: id, enabled, type, direction, title, source. */
export function formatJobList(jobs: Job[]): string {
  if (jobs.length === 0) return "no jobs - add one with 'cncopjobs add'\n";
  const rows = [["ID", "ON", "TYPE", "DIR", "TITLE", "SOURCE"]];
  for (const j of jobs) {
    rows.push([String(j.id), j.enabled ? "yes" : "no", j.type, j.direction, j.title, j.source]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) =>
    r.map((v, c) => (c === r.length - 1 ? v : v.padEnd(widths[c]!))).join("  ")
  )
    .join("\n") + "\n";
}

/** Every field of a job, one per line. */
export function formatJob(j: Job): string {
  const list = (a: string[]) => (a.length ? a.join(" ") : "-");
  const lines: Array<[string, string]> = [
    ["id", String(j.id)],
    ["title", j.title],
    ["type", j.type],
    ["direction", j.direction],
    ["enabled", j.enabled ? "yes" : "no"],
    ["source", j.source || "-"],
    ["destination", j.destination || "-"],
    ["max retries", String(j.maxRetries)],
    ["prerun", j.prerun || "-"],
    ["postrun success", j.postrunSuccess || "-"],
    ["postrun failure", j.postrunFailure || "-"],
    ["command timeout", `${j.commandTimeout} s`],
    ["delete collar", String(j.deleteCollar)],
    ["include", list(j.include)],
    ["exclude", list(j.exclude)],
    ["retention", `${j.retentionDays} days`],
    ["agent args", list(j.agentArgs)],
    ["settings", JSON.stringify(j.settings)],
    ["created", j.createdAt],
    ["updated", j.updatedAt],
  ];
  const w = Math.max(...lines.map(([k]) => k.length));
  return lines.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join("\n") + "\n";
}
