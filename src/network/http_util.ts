/**
 * Small HTTP helpers for the server: JSON answers, bounded body reads, typed HTTP errors.
 * Error bodies carry a short fixed message and never internal details.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from "node:http";

/** An error that becomes an HTTP answer with `status` and `{ "error": message }`. */
export class HttpError extends Error {
  status: number;
  headers: Record<string, string>;
  extra: Record<string, unknown>;
  constructor(
    status: number,
    message: string,
    options: { headers?: Record<string, string>; extra?: Record<string, unknown> } = {},
  ) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.headers = options.headers ?? {};
    this.extra = options.extra ?? {};
  }
}

/** Sends a JSON answer. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const data = Buffer.from(JSON.stringify(body) + "\n");
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": String(data.length),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(data);
}

/** Reads a request body of at most `limit` bytes. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > limit) throw new HttpError(413, "request body too large");
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, "request body too large");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Reads a JSON object body of at most `limit` bytes. */
export async function readJson(
  req: IncomingMessage,
  limit: number,
): Promise<Record<string, unknown>> {
  const buf = await readBody(req, limit);
  try {
    const v = JSON.parse(buf.toString("utf8")) as unknown;
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not an object");
    return v as Record<string, unknown>;
  } catch {
    throw new HttpError(400, "request body must be a JSON object");
  }
}

/** Writes one NDJSON line, waiting when the socket is full. */
export async function writeLine(res: ServerResponse, value: unknown): Promise<void> {
  if (!res.write(JSON.stringify(value) + "\n")) await drained(res);
}

/**
 * Waits until `res` can take more; fails when the client went away (also when it went
 * before the wait began: its 'close' has fired then and no 'drain' will come).
 */
export function drained(res: ServerResponse): Promise<void> {
  if (res.destroyed || res.writableEnded) return Promise.reject(new Error("client went away"));
  return new Promise<void>((resolve, reject) => {
    const done = () => {
      res.off("close", closed);
      resolve();
    };
    const closed = () => {
      res.off("drain", done);
      reject(new Error("client went away"));
    };
    res.once("drain", done);
    res.once("close", closed);
  });
}
