/**
 * Which jobs a cncopagent run does, and in what order.
 *
 * @module
 */
import { JobNotFoundError, UsageError } from "../core/errors.ts";
import { type Job, type JobsDb, parseJobType } from "../core/jobs_db.ts";

/** What the command line asked for: exactly one of the three. */
export interface Selection {
  all?: boolean;
  type?: string;
  jobs?: string[];
}

const byTitle = (a: Job, b: Job) => {
  const x = a.title.toLowerCase();
  const y = b.title.toLowerCase();
  return x < y ? -1 : x > y ? 1 : a.id - b.id;
};

/** PULL jobs before PUSH jobs, each alphabetically by title (case-insensitive). */
export function allJobsOrder(jobs: Job[]): Job[] {
  const pull = jobs.filter((j) => j.direction === "PULL").sort(byTitle);
  const push = jobs.filter((j) => j.direction === "PUSH").sort(byTitle);
  return [...pull, ...push];
}

/**
 * The jobs to run, in order.
 * - `all`: every enabled job, PULL before PUSH, then by title;
 * - `type`: every enabled job of that type (any case), by title;
 * - `jobs`: each job named (id or title) in the order given, once, enabled or not.
 *
 * @throws {UsageError} when none or more than one of the three is given, for an unknown
 *   type (listing the known ones), or a job that does not exist.
 */
export function selectJobs(db: JobsDb, s: Selection): Job[] {
  const given = [s.all === true, s.type !== undefined, (s.jobs?.length ?? 0) > 0]
    .filter(Boolean).length;
  if (given === 0) {
    throw new UsageError("no jobs given", {
      hint: "name jobs by id or title, or give --alljobs or --type TYPE",
    });
  }
  if (given > 1) {
    throw new UsageError("give only one of --alljobs, --type TYPE or job names", {
      hint: "run 'cncopagent --help'",
    });
  }
  if (s.all) return allJobsOrder(db.list().filter((j) => j.enabled));
  if (s.type !== undefined) {
    const type = parseJobType(s.type);
    return db.list().filter((j) => j.enabled && j.type === type).sort(byTitle);
  }
  const seen = new Set<number>();
  const out: Job[] = [];
  for (const ref of s.jobs!) {
    const job = db.tryFind(ref);
    if (!job) {
      const e = new JobNotFoundError(ref);
      throw new UsageError(e.message, { hint: e.hint });
    }
    if (!seen.has(job.id)) out.push(job);
    seen.add(job.id);
  }
  return out;
}
