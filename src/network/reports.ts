/**
 * Job reports sent by cncopreporter: JE (job exception), JS (job statistics), JF (job
 * finished). Stored per job; a report sent twice with the same id is stored once, so the
 * reporter can retry freely.
 *
 * @module
 */
import { randomUUID } from "node:crypto";
import type { Catalog, JobRow } from "./catalog.ts";
import { HttpError } from "./http_util.ts";

/** Report types. */
export const REPORT_TYPES = ["JE", "JS", "JF"] as const;
/** A report type. */
export type ReportType = (typeof REPORT_TYPES)[number];

const REPORT_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Validates and stores a report body `{ type, id?, ... }`. */
export function acceptReport(
  catalog: Catalog,
  job: JobRow,
  body: Record<string, unknown>,
): { id: string; type: ReportType; created: boolean } {
  const type = body.type;
  if (typeof type !== "string" || !(REPORT_TYPES as readonly string[]).includes(type)) {
    throw new HttpError(400, "report type must be JE, JS or JF");
  }
  let id = body.id;
  if (id === undefined) id = randomUUID();
  if (typeof id !== "string" || !REPORT_ID.test(id)) {
    throw new HttpError(400, "report id must be 1-128 of A-Z a-z 0-9 . _ : -");
  }
  const created = catalog.addReport(job.id, type, id, JSON.stringify(body));
  return { id, type: type as ReportType, created };
}
