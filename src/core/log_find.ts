/**
 * Finding program logs by prefix and date (the work behind `w`).
 *
 * @module
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** A log file and the local date its name carries. */
export interface LogFile {
  path: string;
  name: string;
  /** YYYY-MM-DD from the name. */
  date: string;
  mtimeMs: number;
}

const namePattern =
  /^([A-Z]{1,8})-(\d{2}|\d{4})-(\d{2})-(\d{2})(?:_(\d{4,6}))?(?:-(\d{3,}))?\.log$/;

/** Parses a log name; undefined when it is not one cncop writes. */
export function parseLogName(name: string): { prefix: string; date: string } | undefined {
  const m = namePattern.exec(name);
  if (!m) return undefined;
  const year = m[2]!.length === 2 ? `20${m[2]}` : m[2]!;
  return { prefix: m[1]!, date: `${year}-${m[3]}-${m[4]}` };
}

/** Chronological sort key of a log name: date, time of day, collision suffix. */
function sortKey(name: string): string {
  const m = namePattern.exec(name)!;
  return `${m[5] ?? ""}`.padEnd(6, "0") + `${m[6] ?? ""}`.padStart(6, "0");
}

/** The local date `daysAgo` days before `now`, as YYYY-MM-DD. */
export function localDate(now: Date, daysAgo = 0): string {
  const d = new Date(now.getFullYear(), now.getMonth(), now.getDate() - daysAgo);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** Logs in `dir` with `prefix` (exact, case-insensitive), oldest first. */
export function listLogs(dir: string, prefix: string): LogFile[] {
  const want = prefix.toUpperCase();
  const out: LogFile[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const p = parseLogName(name);
    if (!p || p.prefix !== want) continue;
    try {
      out.push({
        path: join(dir, name),
        name,
        date: p.date,
        mtimeMs: statSync(join(dir, name)).mtimeMs,
      });
    } catch {
      // vanished between readdir and stat (pruned): not a candidate
    }
  }
  // mtime breaks ties between names of the same minute or day.
  return out.sort((a, b) =>
    a.date.localeCompare(b.date) || sortKey(a.name).localeCompare(sortKey(b.name)) ||
    a.mtimeMs - b.mtimeMs
  );
}

/** The newest log with `prefix`, optionally only among those dated `daysAgo` days back. */
export function newestLog(
  dir: string,
  prefix: string,
  daysAgo?: number,
  now = new Date(),
): LogFile | undefined {
  let logs = listLogs(dir, prefix);
  if (daysAgo !== undefined) {
    const date = localDate(now, daysAgo);
    logs = logs.filter((l) => l.date === date);
  }
  return logs.at(-1);
}
