/**
 * Chunked, resumable uploads of pack files. An upload is named by the client (so a client
 * that crashed can resume without remembering anything) and its bytes live in
 * `uploads/<job>/<name>.part`. The part file's size is the offset: every byte in it is the
 * client's byte at that position, so after a crash the upload resumes where the file ends.
 * When the last byte arrives the pack is verified and applied.
 *
 * @module
 */
import { mkdir, open, rm, stat } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { join } from "node:path";
import { errnoCode, messageOf, PackRejectedError } from "../core/errors.ts";
import { type ApplyContext, applyPack, type ApplyResult } from "./apply.ts";
import type { JobRow } from "./catalog.ts";
import { HttpError } from "./http_util.ts";

/** The state of an upload as the API shows it. */
export interface UploadStatus {
  id: string;
  size: number;
  offset: number;
  state: "open" | "applied" | "rejected";
  result?: ApplyResult;
  error?: string;
}

const UPLOAD_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** Manages uploads for a server. */
export class Uploads {
  #ctx: ApplyContext;
  #dir: string;
  #maxPack: number;
  #maxChunk: number;
  #busy = new Set<string>();

  constructor(ctx: ApplyContext, dataDir: string, options: { maxPack: number; maxChunk: number }) {
    this.#ctx = ctx;
    this.#dir = join(dataDir, "uploads");
    this.#maxPack = options.maxPack;
    this.#maxChunk = options.maxChunk;
  }

  #part(job: JobRow, id: string): string {
    return join(this.#dir, String(job.id), `${id}.part`);
  }

  /**
   * Takes the upload `id` of catalog job `jobId` for exclusive work (the expiry sweep):
   * false when a request is appending to it right now. Give it back with {@link release}.
   */
  claim(jobId: number, id: string): boolean {
    const key = `${jobId}/${id}`;
    if (this.#busy.has(key)) return false;
    this.#busy.add(key);
    return true;
  }

  /** Gives back an upload taken with {@link claim}. */
  release(jobId: number, id: string): void {
    this.#busy.delete(`${jobId}/${id}`);
  }

  async #offset(job: JobRow, id: string): Promise<number> {
    try {
      return (await stat(this.#part(job, id))).size;
    } catch (err) {
      if (errnoCode(err) === "ENOENT") return 0;
      throw err;
    }
  }

  /** Creates an upload, or returns the existing one of that name (resume). */
  async create(job: JobRow, id: unknown, size: unknown): Promise<UploadStatus> {
    if (typeof id !== "string" || !UPLOAD_ID.test(id)) {
      throw new HttpError(400, "upload id must be 1-128 of A-Z a-z 0-9 . _ -");
    }
    if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 45) {
      throw new HttpError(400, "upload size must be the pack's size in bytes");
    }
    if (size > this.#maxPack) throw new HttpError(413, `pack larger than ${this.#maxPack} bytes`);
    let existing = this.#ctx.catalog.upload(job.id, id);
    if (existing?.state === "rejected") {
      // A rejected upload is over; creating it again starts afresh (e.g. a repaired pack).
      this.#ctx.catalog.deleteUpload(job.id, id);
      await rm(this.#part(job, id), { force: true });
      existing = undefined;
    }
    if (existing && existing.size !== size) {
      throw new HttpError(409, "an upload of that id exists with another size");
    }
    if (!existing) {
      await mkdir(join(this.#dir, String(job.id)), { recursive: true });
      // A part file without an open row is garbage (e.g. left by an expiry racing an append):
      // its bytes must never become the start of the new upload.
      await rm(this.#part(job, id), { force: true });
      this.#ctx.catalog.createUpload(job.id, id, size);
    }
    return this.status(job, id);
  }

  /** The state of an upload; 404 when unknown. */
  async status(job: JobRow, id: string): Promise<UploadStatus> {
    const row = this.#ctx.catalog.upload(job.id, id);
    if (!row) throw new HttpError(404, "not found");
    const s: UploadStatus = { id, size: row.size, offset: 0, state: row.state };
    if (row.state === "open") s.offset = await this.#offset(job, id);
    else s.offset = row.size;
    if (row.state === "applied" && row.result) s.result = JSON.parse(row.result) as ApplyResult;
    if (row.state === "rejected" && row.result) {
      s.error = (JSON.parse(row.result) as { error: string }).error;
    }
    return s;
  }

  /**
   * Appends the request body at `offset`. Bytes before the current offset are skipped (a
   * repeated chunk is harmless); an offset past it is a 409 carrying the current offset.
   * When the upload is complete, applies the pack.
   */
  async append(
    deviceId: number,
    job: JobRow,
    id: string,
    offset: number,
    req: IncomingMessage,
  ): Promise<UploadStatus> {
    const key = `${job.id}/${id}`;
    if (this.#busy.has(key)) { // Transient: the other request ends soon (or its client went away).
      throw new HttpError(503, "upload busy", { headers: { "retry-after": "1" } });
    }
    this.#busy.add(key);
    try {
      let s = await this.status(job, id);
      if (s.state !== "open") {
        req.resume();
        return s;
      }
      if (!Number.isSafeInteger(offset) || offset < 0) {
        throw new HttpError(400, "bad Upload-Offset");
      }
      if (offset > s.offset) {
        req.resume();
        throw new HttpError(409, "offset mismatch", { extra: { offset: s.offset } });
      }
      const declared = Number(req.headers["content-length"] ?? "-1");
      if (declared > this.#maxChunk) {
        throw new HttpError(413, `chunk larger than ${this.#maxChunk} bytes`);
      }
      if (declared >= 0 && offset + declared > s.size) {
        throw new HttpError(400, "chunk goes past the upload's size");
      }
      const fh = await open(this.#part(job, id), "a");
      try {
        let pos = offset;
        let received = 0;
        for await (const c of req) {
          let chunk = c as Buffer;
          received += chunk.length;
          if (received > this.#maxChunk) throw new HttpError(413, "chunk too large");
          if (pos + chunk.length > s.size) {
            throw new HttpError(400, "chunk goes past the upload's size");
          }
          if (pos < s.offset) {
            const skip = Math.min(chunk.length, s.offset - pos);
            chunk = chunk.subarray(skip);
            pos += skip;
          }
          if (chunk.length > 0) {
            await fh.write(chunk);
            pos += chunk.length;
            s.offset = pos;
          }
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      s = await this.status(job, id);
      if (s.offset === s.size) return await this.finish(deviceId, job, id);
      return s;
    } finally {
      this.#busy.delete(key);
    }
  }

  /** Applies a complete upload (again, idempotently, after a crash). */
  async finish(deviceId: number, job: JobRow, id: string): Promise<UploadStatus> {
    const part = this.#part(job, id);
    const { catalog } = this.#ctx;
    try {
      const result = await applyPack(this.#ctx, deviceId, job, part);
      catalog.finishUpload(job.id, id, "applied", JSON.stringify(result));
    } catch (err) {
      if (!(err instanceof PackRejectedError)) throw err;
      catalog.finishUpload(job.id, id, "rejected", JSON.stringify({ error: messageOf(err) }));
    }
    await rm(part, { force: true });
    return this.status(job, id);
  }
}
