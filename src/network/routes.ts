/**
 * The `/v1` API of the cncop network (docs/network-api.md). Every route authenticates the
 * device first; a job is looked up within the device's own jobs only, so another device's
 * job is simply "not found".
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { pipeline } from "node:stream/promises";
import { createReadStream } from "node:fs";
import type { Authenticator } from "./auth.ts";
import type { Catalog, DeviceRow, JobRow, VersionRow } from "./catalog.ts";
import type { BlobStore, ByteRange } from "./storage.ts";
import { drained, HttpError, readJson, sendJson } from "./http_util.ts";
import type { Uploads } from "./upload.ts";
import { loadNative } from "./native.ts";
import { acceptReport } from "./reports.ts";

/** What the routes need. */
export interface RouteContext {
  catalog: Catalog;
  blobs: BlobStore;
  auth: Authenticator;
  uploads: Uploads;
}

const JOB_KEY = /^[A-Za-z0-9._-]{1,128}$/;
const JSON_LIMIT = 1024 * 1024;

/** A version as the API shows it. */
export function versionJson(v: VersionRow, history = false): Record<string, unknown> {
  const o: Record<string, unknown> = {
    path: v.path,
    size: v.size,
    mtimeNs: v.mtime_ns,
    mode: v.mode,
    hash: v.hash,
    version: v.id,
    created: v.created_at,
  };
  if (history) {
    o.ended = v.ended_at;
    o.deleted = v.deleted === 1;
  }
  return o;
}

function jobJson(j: JobRow): Record<string, unknown> {
  return { job: j.job_key, retentionDays: j.retention_days, created: j.created_at };
}

function parseAt(s: string | null): number | undefined {
  if (s === null || s === "") return undefined;
  const n = /^\d+$/.test(s) ? Number(s) : Date.parse(s);
  if (!Number.isFinite(n)) throw new HttpError(400, "at must be milliseconds or an ISO date");
  return n;
}

function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) throw new HttpError(416, "unsupported range");
  let start: number;
  let end: number;
  if (m[1] === "") {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) {
    throw new HttpError(416, "range not satisfiable", {
      headers: { "content-range": `bytes */${size}` },
    });
  }
  return { start, end };
}

/** Handles one request; throws {@link HttpError} for error answers. */
export async function route(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const url = new URL(req.url ?? "/", "http://x");
  const method = req.method ?? "GET";
  const parts = url.pathname.split("/").filter((p) => p !== "").map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      throw new HttpError(400, "bad URL");
    }
  });
  if (parts[0] !== "v1") throw new HttpError(404, "not found");
  const device = ctx.auth.authenticate(req);
  const { catalog } = ctx;

  if (parts.length === 2 && parts[1] === "whoami" && method === "GET") {
    return sendJson(res, 200, { device: device.name });
  }
  if (parts[1] !== "jobs") throw new HttpError(404, "not found");
  if (parts.length === 2) {
    if (method !== "GET") throw new HttpError(405, "method not allowed");
    return sendJson(res, 200, { jobs: catalog.jobsOf(device.id).map(jobJson) });
  }
  const key = parts[2]!;
  if (!JOB_KEY.test(key)) throw new HttpError(404, "not found");
  const rest = parts.slice(3);
  const sub = rest[0];

  // Creating routes: the first upload, report or settings call creates the job.
  const creates = (method === "PUT" && rest.length === 0) ||
    (method === "POST" && rest.length === 1 && (sub === "uploads" || sub === "reports"));
  const job = creates ? catalog.ensureJob(device.id, key) : catalog.job(device.id, key);
  if (!job) throw new HttpError(404, "not found");

  if (rest.length === 0) {
    if (method === "GET") return sendJson(res, 200, jobJson(job));
    if (method === "PUT") {
      const body = await readJson(req, JSON_LIMIT);
      const days = body.retentionDays;
      if (days !== undefined) {
        if (typeof days !== "number" || !Number.isInteger(days) || days < 0 || days > 36500) {
          throw new HttpError(400, "retentionDays must be a whole number of days (0-36500)");
        }
        catalog.setRetention(job.id, days);
      }
      return sendJson(res, 200, jobJson(catalog.job(device.id, key)!));
    }
    throw new HttpError(405, "method not allowed");
  }

  switch (sub) {
    case "files":
      if (rest.length !== 1 || method !== "GET") break;
      return await listFiles(ctx, job, url, req, res);
    case "versions":
      return await versions(ctx, device, job, rest, method, url, req, res);
    case "uploads":
      return await uploads(ctx, device, job, rest, method, req, res);
    case "reports":
      if (rest.length !== 1) break;
      if (method === "POST") {
        const body = await readJson(req, JSON_LIMIT);
        const r = acceptReport(catalog, job, body);
        return sendJson(res, r.created ? 201 : 200, r);
      }
      if (method === "GET") {
        const type = url.searchParams.get("type") ?? undefined;
        return sendJson(res, 200, {
          reports: catalog.reports(job.id, type).map((r) => ({
            id: r.report_key,
            type: r.type,
            received: r.received_at,
            report: JSON.parse(r.body) as unknown,
          })),
        });
      }
      throw new HttpError(405, "method not allowed");
  }
  throw new HttpError(404, "not found");
}

async function listFiles(
  ctx: RouteContext,
  job: JobRow,
  url: URL,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const prefix = url.searchParams.get("prefix") ?? undefined;
  const asked = parseAt(url.searchParams.get("at"));
  // The whole current listing has a tag (taken before its point in time: see listingTag);
  // a client that holds the listing of that tag gets a 304 and no body.
  const tag = prefix === undefined && asked === undefined
    ? `"${ctx.catalog.listingTag(job.id)}"`
    : undefined;
  if (tag && req.headers["if-none-match"] === tag) {
    res.writeHead(304, { etag: tag, "cache-control": "no-store" });
    res.end();
    return;
  }
  // A fixed point in time keeps the listing consistent while packs are applied meanwhile.
  const at = asked ?? ctx.catalog.now();
  res.writeHead(200, {
    "content-type": "application/x-ndjson",
    "cache-control": "no-store",
    ...(tag ? { etag: tag } : {}),
  });
  for (const page of ctx.catalog.treeNdjson(job.id, { prefix, at })) {
    if (!res.write(page.text)) await drained(res);
  }
  res.end();
}

async function versions(
  ctx: RouteContext,
  device: DeviceRow,
  job: JobRow,
  rest: string[],
  method: string,
  url: URL,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  if (method !== "GET") throw new HttpError(405, "method not allowed");
  if (rest.length === 1) {
    const path = url.searchParams.get("path");
    if (!path) throw new HttpError(400, "path is required");
    return sendJson(res, 200, {
      versions: ctx.catalog.versionsOf(job.id, path).map((v) => versionJson(v, true)),
    });
  }
  const id = Number(rest[1]);
  const v = Number.isSafeInteger(id) ? ctx.catalog.version(job.id, id) : undefined;
  if (!v) throw new HttpError(404, "not found");
  if (rest.length === 2) return sendJson(res, 200, versionJson(v, true));
  if (rest.length !== 3) throw new HttpError(404, "not found");
  if (rest[2] === "content") {
    const range = parseRange(req.headers.range, v.size);
    const headers: Record<string, string> = {
      "content-type": "application/octet-stream",
      "accept-ranges": "bytes",
      etag: `"${v.hash}"`,
      "x-cncop-hash": v.hash,
    };
    if (v.size === 0) {
      res.writeHead(200, { ...headers, "content-length": "0" });
      res.end();
      return;
    }
    if (range) {
      headers["content-range"] = `bytes ${range.start}-${range.end}/${v.size}`;
      headers["content-length"] = String(range.end - range.start + 1);
      res.writeHead(206, headers);
    } else {
      headers["content-length"] = String(v.size);
      res.writeHead(200, headers);
    }
    await pipeline(ctx.blobs.read(device.id, v.hash, range), res);
    return;
  }
  if (rest[2] === "signature") {
    const native = await loadNative();
    const local = await ctx.blobs.localPath(device.id, v.hash);
    const sig = join(ctx.blobs.tmpDir, `${randomBytes(12).toString("hex")}.sig`);
    try {
      await native.signature(local.path, sig);
      res.writeHead(200, { "content-type": "application/octet-stream" });
      await pipeline(createReadStream(sig), res);
    } finally {
      await local.release();
      await rm(sig, { force: true });
    }
    return;
  }
  throw new HttpError(404, "not found");
}

async function uploads(
  ctx: RouteContext,
  device: DeviceRow,
  job: JobRow,
  rest: string[],
  method: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  if (rest.length === 1) {
    if (method !== "POST") throw new HttpError(405, "method not allowed");
    const body = await readJson(req, JSON_LIMIT);
    const s = await ctx.uploads.create(job, body.id, body.size);
    return sendJson(res, 201, s, { "upload-offset": String(s.offset) });
  }
  if (rest.length !== 2) throw new HttpError(404, "not found");
  const id = rest[1]!;
  if (method === "GET") {
    const s = await ctx.uploads.status(job, id);
    return sendJson(res, 200, s, { "upload-offset": String(s.offset) });
  }
  if (method === "PATCH") {
    const off = req.headers["upload-offset"];
    if (typeof off !== "string" || !/^\d+$/.test(off)) {
      throw new HttpError(400, "Upload-Offset header is required");
    }
    const s = await ctx.uploads.append(device.id, job, id, Number(off), req);
    return sendJson(res, s.state === "rejected" ? 422 : 200, s, {
      "upload-offset": String(s.offset),
    });
  }
  throw new HttpError(405, "method not allowed");
}
