/**
 * The one HTTP client of the cncop network, used by every program: bearer token, HTTPS with
 * a private CA, timeouts, retries with exponential backoff on 5xx and connection errors
 * (never on 4xx, except 429 which asks to come back later), resumable chunked uploads.
 *
 * @example
 * ```ts
 * const client = new NetworkClient({ url: "https://backup.example:8443", token });
 * for await (const f of client.peek("7")) console.log(f.path, f.version);
 * const result = await client.uploadPack("7", "Spool/Work/0001.pack");
 * ```
 *
 * @module
 */
import { createReadStream, readFileSync } from "node:fs";
import { open } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import { Readable } from "node:stream";
import {
  ConfigError,
  errnoCode,
  messageOf,
  NetworkError,
  PackRejectedError,
  TransientError,
} from "../core/errors.ts";

/** Options of {@link NetworkClient}. */
export interface ClientOptions {
  /** Base URL, e.g. `https://backup.example:8443`. */
  url: string;
  /** The device's bearer token. */
  token: string;
  /** PEM file of a private CA to trust (cncop3.ini `[network] ca_file`). */
  caFile?: string;
  /** Idle timeout of a request, ms. @default 60000 */
  timeoutMs?: number;
  /** Retries after the first attempt on 5xx, 429 and connection errors. @default 5 */
  retries?: number;
  /** First backoff delay, ms; doubles each retry, with jitter. @default 500 */
  backoffMs?: number;
}

/** The server's view of an upload (`POST` / `GET /uploads/ID`). */
export interface UploadStatus {
  offset: number;
  size: number;
  state: "open" | "applied" | "rejected";
  result?: PackResult;
  error?: string;
}

/** A file of a job's listing (peek, tree at a time). */
export interface RemoteFile {
  path: string;
  size: number;
  mtimeNs: string;
  mode: number;
  hash: string;
  version: number;
  /** When this version was stored (ms since epoch). */
  created: number;
}

/** A version in a path's history. */
export interface RemoteVersion extends RemoteFile {
  /** When it stopped being current (ms), null while current. */
  ended: number | null;
  /** It ended because the path was deleted or moved away. */
  deleted: boolean;
}

/** What applying an uploaded pack did (see src/network/apply.ts). */
export interface PackResult {
  /** The first entry's kind, path, new path and version. */
  kind: "add" | "update" | "move" | "delete";
  path: string;
  newPath?: string;
  version?: number;
  /** A folder move's new version ids, first and last (in the old paths' byte order). */
  versions?: [number, number];
  /** Paths changed by the whole pack. */
  changed: number;
  /** Each entry's result, in pack order. */
  entries: Omit<PackResult, "entries" | "listing">[];
  /** The job's listing tags before and after the pack. */
  listing?: { before: string; after: string };
}

/** Options of {@link NetworkClient.peekBatches}. */
export interface ListingOptions {
  /** Only the files under this folder. */
  prefix?: string;
  /** The tree as it was at this time (ms or Date). */
  at?: number | Date;
  /** The tag of a listing the caller holds: the network answers 304 when it still holds. */
  ifTag?: string;
  /**
   * Called once the network answered, before any file: the listing's tag (a whole current
   * listing has one) and whether the caller's `ifTag` listing still holds (nothing sent).
   */
  onTag?: (tag: string | undefined, notModified: boolean) => void;
}

/** Result of {@link NetworkClient.uploadPack}. */
export interface UploadResult {
  result: PackResult;
  /** Bytes this call sent (less than the pack when it resumed). */
  sentBytes: number;
  /** Offset the upload resumed from. */
  resumedFrom: number;
}

/** Options of {@link NetworkClient.uploadPack}. */
export interface UploadOptions {
  /** Upload name; the same name resumes. @default the pack's SHA-256 trailer */
  id?: string;
  /** Bytes per request. @default 8 MiB */
  chunkSize?: number;
  /** Called after each acknowledged chunk. */
  onProgress?: (offset: number, size: number) => void;
  /** Stops the upload (it can be resumed later). */
  signal?: AbortSignal;
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  res: http.IncomingMessage;
}

interface RequestSpec {
  method: string;
  path: string;
  headers?: Record<string, string>;
  /** A body, or a factory for a fresh body stream on each attempt. */
  body?: Buffer | (() => Readable);
  signal?: AbortSignal;
}

const RETRY_STATUSES = new Set([429, 500, 502, 503, 504]);

/** The cncop network client. */
export class NetworkClient {
  readonly base: URL;
  #token: string;
  #agent: http.Agent;
  #timeout: number;
  #retries: number;
  #backoff: number;

  constructor(o: ClientOptions) {
    let base: URL;
    try {
      base = new URL(o.url);
    } catch {
      throw new ConfigError(`network url ${JSON.stringify(o.url)} is not a URL`, {
        hint: "set [network] url in cncop3.ini, e.g. https://backup.example:8443",
      });
    }
    if (base.protocol !== "http:" && base.protocol !== "https:") {
      throw new ConfigError(`network url ${o.url} must start with http:// or https://`);
    }
    if (!o.token) {
      throw new ConfigError("no network token", {
        hint: "set [network] token in cncop3.ini (from 'cncopd device add NAME')",
      });
    }
    this.base = base;
    this.#token = o.token;
    this.#timeout = o.timeoutMs ?? 60_000;
    this.#retries = o.retries ?? 5;
    this.#backoff = o.backoffMs ?? 500;
    if (base.protocol === "https:") {
      let ca: Buffer | undefined;
      if (o.caFile) {
        try {
          ca = readFileSync(o.caFile);
        } catch (err) {
          throw new ConfigError(`cannot read the network CA file ${o.caFile}: ${messageOf(err)}`);
        }
      }
      this.#agent = new https.Agent({ keepAlive: true, maxSockets: 8, ...(ca ? { ca } : {}) });
    } else {
      this.#agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    }
  }

  /** Closes idle connections. */
  close(): void {
    this.#agent.destroy();
  }

  #once(spec: RequestSpec): Promise<Answer> {
    const url = new URL(spec.path, this.base);
    const mod = url.protocol === "https:" ? https : http;
    return new Promise<Answer>((resolve, reject) => {
      const headers: Record<string, string> = {
        authorization: `Bearer ${this.#token}`,
        "user-agent": "cncop",
        ...spec.headers,
      };
      if (Buffer.isBuffer(spec.body)) headers["content-length"] = String(spec.body.length);
      const req = mod.request(url, {
        method: spec.method,
        headers,
        agent: this.#agent,
        signal: spec.signal,
      });
      req.setTimeout(
        this.#timeout,
        () => req.destroy(new Error(`no answer in ${this.#timeout} ms`)),
      );
      req.on("error", reject);
      req.on("response", (res) => {
        res.setTimeout(this.#timeout, () => res.destroy(new Error("answer stalled")));
        resolve({ status: res.statusCode ?? 0, headers: res.headers, res });
      });
      if (spec.body === undefined) req.end();
      else if (Buffer.isBuffer(spec.body)) req.end(spec.body);
      else {
        const src = spec.body();
        src.on("error", (e) => req.destroy(e));
        src.pipe(req);
      }
    });
  }

  /**
   * Sends a request, retrying 5xx, 429 and connection errors with backoff. Resolves with
   * the first non-retried answer (any status); the caller reads or drains its body.
   *
   * @throws {TransientError} when every attempt failed.
   */
  async request(spec: RequestSpec): Promise<Answer> {
    let lastProblem = "";
    for (let attempt = 0; attempt <= this.#retries; attempt++) {
      if (attempt > 0) await this.#sleep(attempt, spec.signal, lastProblem);
      try {
        const a = await this.#once(spec);
        if (!RETRY_STATUSES.has(a.status)) return a;
        lastProblem = `HTTP ${a.status}`;
        if (a.status === 429 || a.status === 503) {
          const after = Number(a.headers["retry-after"]);
          if (Number.isFinite(after) && after > 0) lastProblem = `retry-after:${after}`;
        }
        a.res.resume();
      } catch (err) {
        if (spec.signal?.aborted) throw err;
        const code = errnoCode(err) ?? "";
        if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
          // A certificate problem does not go away by retrying.
          throw new NetworkError(
            `cannot verify the certificate of ${this.base.origin}: ${messageOf(err)}`,
            { hint: "set [network] ca_file in cncop3.ini to the CA that signed it", cause: err },
          );
        }
        lastProblem = messageOf(err);
      }
    }
    throw new TransientError(
      `the cncop network at ${this.base.origin} did not answer ${spec.method} ${
        spec.path.split("?")[0]
      }: ${lastProblem.replace(/^retry-after:.*/, "busy")}`,
      { hint: "it will be retried on the next run" },
    );
  }

  async #sleep(attempt: number, signal: AbortSignal | undefined, problem: string): Promise<void> {
    const m = /^retry-after:(\d+)/.exec(problem);
    const base = m ? Number(m[1]) * 1000 : this.#backoff * 2 ** (attempt - 1);
    const ms = Math.min(30_000, base) * (0.75 + Math.random() * 0.5);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(resolve, ms);
      signal?.addEventListener("abort", () => {
        clearTimeout(t);
        reject(signal.reason);
      }, { once: true });
    });
  }

  /** Sends a request and reads a JSON answer; 4xx become {@link NetworkError}. */
  async json<T>(spec: RequestSpec, ok: number[] = [200, 201]): Promise<T> {
    const a = await this.request(spec);
    const text = await readAll(a.res);
    if (!ok.includes(a.status)) throw this.#error(spec, a.status, text);
    return JSON.parse(text) as T;
  }

  #error(spec: RequestSpec, status: number, text: string): NetworkError {
    let msg = "";
    try {
      msg = (JSON.parse(text) as { error?: string }).error ?? "";
    } catch { /* not JSON */ }
    const what = `${spec.method} ${spec.path.split("?")[0]}`;
    if (status === 401) {
      return new NetworkError(`the cncop network refused the device token (${what})`, {
        status,
        hint: "check [network] token in cncop3.ini; the device may have been revoked",
      });
    }
    return new NetworkError(
      `the cncop network answered ${status}${msg ? ` (${msg})` : ""} to ${what}`,
      {
        status,
      },
    );
  }

  #jobPath(job: string, rest = ""): string {
    return `/v1/jobs/${encodeURIComponent(job)}${rest}`;
  }

  /** The device name the token belongs to. */
  async whoami(): Promise<string> {
    return (await this.json<{ device: string }>({ method: "GET", path: "/v1/whoami" })).device;
  }

  /** Sets a job's retention (creates the job when new). */
  async setRetention(job: string, days: number): Promise<void> {
    await this.json({
      method: "PUT",
      path: this.#jobPath(job),
      headers: { "content-type": "application/json" },
      body: Buffer.from(JSON.stringify({ retentionDays: days })),
    });
  }

  /** The device's jobs on the network. */
  async jobs(): Promise<{ job: string; retentionDays: number; created: number }[]> {
    return (await this.json<{ jobs: { job: string; retentionDays: number; created: number }[] }>({
      method: "GET",
      path: "/v1/jobs",
    })).jobs;
  }

  /**
   * Streams a job's listing: current files, or the tree as it was at `at` (ms or Date),
   * sorted by path, optionally under `prefix`. A job the network does not know yet lists
   * nothing.
   */
  async *peek(
    job: string,
    options: { prefix?: string; at?: number | Date } = {},
  ): AsyncIterable<RemoteFile> {
    for await (const batch of this.peekBatches(job, options)) yield* batch;
  }

  /**
   * {@link peek} in batches: the files of each chunk the network sent, so a consumer of a
   * million-file listing handles a few hundred arrays instead of a million awaited items,
   * and reads no further ahead than it consumes.
   */
  async *peekBatches(
    job: string,
    options: ListingOptions = {},
  ): AsyncIterable<RemoteFile[]> {
    const q = new URLSearchParams();
    if (options.prefix) q.set("prefix", options.prefix);
    if (options.at !== undefined) q.set("at", String(+options.at));
    const spec: RequestSpec = {
      method: "GET",
      path: this.#jobPath(job, `/files${q.size ? `?${q}` : ""}`),
      headers: options.ifTag ? { "if-none-match": `"${options.ifTag}"` } : {},
    };
    const a = await this.request(spec);
    if (a.status === 404) {
      a.res.resume();
      options.onTag?.(undefined, false);
      return;
    }
    if (a.status !== 200 && a.status !== 304) {
      throw this.#error(spec, a.status, await readAll(a.res));
    }
    const etag = a.headers.etag;
    options.onTag?.(
      /^"[^"]+"$/.test(etag ?? "") ? etag!.slice(1, -1) : undefined,
      a.status === 304,
    );
    if (a.status === 304) {
      a.res.resume();
      return;
    }
    let rest = "";
    try {
      a.res.setEncoding("utf8");
      for await (const chunk of a.res as AsyncIterable<string>) {
        const text = rest + chunk;
        const cut = text.lastIndexOf("\n");
        if (cut < 0) {
          rest = text;
          continue;
        }
        rest = text.slice(cut + 1);
        const batch: RemoteFile[] = [];
        let from = 0;
        while (from < cut) {
          const nl = text.indexOf("\n", from);
          if (nl > from) batch.push(JSON.parse(text.slice(from, nl)) as RemoteFile);
          from = nl + 1;
        }
        if (batch.length) yield batch;
      }
    } catch (err) {
      throw new TransientError(`the listing of job ${job} was cut off: ${messageOf(err)}`, {
        cause: err,
      });
    }
    if (!a.res.complete || rest.trim() !== "") {
      throw new TransientError(`the listing of job ${job} was cut off`);
    }
  }

  /** Every version of a path, newest first. */
  async versions(job: string, path: string): Promise<RemoteVersion[]> {
    return (await this.json<{ versions: RemoteVersion[] }>({
      method: "GET",
      path: this.#jobPath(job, `/versions?path=${encodeURIComponent(path)}`),
    })).versions;
  }

  /** One version's metadata. */
  version(job: string, id: number): Promise<RemoteVersion> {
    return this.json<RemoteVersion>({ method: "GET", path: this.#jobPath(job, `/versions/${id}`) });
  }

  /**
   * Opens a version's content from byte `start` (a range request when > 0). The caller
   * consumes the stream.
   */
  async openContent(job: string, id: number, start = 0): Promise<http.IncomingMessage> {
    const spec: RequestSpec = {
      method: "GET",
      path: this.#jobPath(job, `/versions/${id}/content`),
      headers: start > 0 ? { range: `bytes=${start}-` } : {},
    };
    const a = await this.request(spec);
    if (a.status !== 200 && a.status !== 206) {
      throw this.#error(spec, a.status, await readAll(a.res));
    }
    return a.res;
  }

  /** Writes the block signature of a stored version to `sigPath`. */
  async fetchSignature(job: string, id: number, sigPath: string): Promise<void> {
    const spec = { method: "GET", path: this.#jobPath(job, `/versions/${id}/signature`) };
    const a = await this.request(spec);
    if (a.status !== 200) throw this.#error(spec, a.status, await readAll(a.res));
    const { writeFile } = await import("node:fs/promises");
    await writeFile(sigPath, a.res);
  }

  /** Sends a report (JE, JS, JF); the same `id` twice is stored once. */
  async sendReport(
    job: string,
    type: "JE" | "JS" | "JF",
    report: Record<string, unknown>,
    id?: string,
  ): Promise<{ id: string; created: boolean }> {
    return await this.json<{ id: string; created: boolean }>({
      method: "POST",
      path: this.#jobPath(job, "/reports"),
      headers: { "content-type": "application/json" },
      body: Buffer.from(JSON.stringify({ ...report, type, ...(id ? { id } : {}) })),
    });
  }

  /** A job's stored reports, oldest first. */
  async reports(
    job: string,
    type?: string,
  ): Promise<{ id: string; type: string; received: number; report: Record<string, unknown> }[]> {
    return (await this.json<
      { reports: { id: string; type: string; received: number; report: Record<string, unknown> }[] }
    >({
      method: "GET",
      path: this.#jobPath(job, `/reports${type ? `?type=${encodeURIComponent(type)}` : ""}`),
    })).reports;
  }

  /**
   * Uploads a pack file in chunks and resolves when the network has applied it. Resumes an
   * earlier, interrupted upload of the same pack where the network stopped.
   *
   * @throws {PackRejectedError} when the network rejects the pack (nothing was stored).
   * @throws {TransientError} when the network stays unreachable (resume on the next run).
   */
  async uploadPack(
    job: string,
    packPath: string,
    options: UploadOptions = {},
  ): Promise<UploadResult> {
    const fh = await open(packPath, "r");
    let size: number;
    let id = options.id;
    try {
      size = (await fh.stat()).size;
      if (id === undefined) {
        const t = Buffer.alloc(32);
        await fh.read(t, 0, 32, Math.max(0, size - 32));
        id = t.toString("hex");
      }
    } finally {
      await fh.close();
    }
    const chunk = options.chunkSize ?? 8 * 1024 * 1024;
    const up = this.#jobPath(job, `/uploads/${encodeURIComponent(id)}`);
    let s = await this.json<UploadStatus>({
      method: "POST",
      path: this.#jobPath(job, "/uploads"),
      headers: { "content-type": "application/json" },
      body: Buffer.from(JSON.stringify({ id, size })),
      signal: options.signal,
    });
    const resumedFrom = s.offset;
    let sent = 0;
    for (;;) {
      if (s.state === "applied") return { result: s.result!, sentBytes: sent, resumedFrom };
      if (s.state === "rejected") {
        throw new PackRejectedError(
          `the network rejected ${packPath}: ${s.error ?? "invalid pack"}`,
        );
      }
      const start = s.offset;
      const end = Math.min(size, start + chunk); // exclusive
      const spec: RequestSpec = {
        method: "PATCH",
        path: up,
        headers: {
          "upload-offset": String(start),
          "content-type": "application/octet-stream",
          "content-length": String(end - start),
        },
        body: () =>
          end > start ? createReadStream(packPath, { start, end: end - 1 }) : Readable.from([]),
        signal: options.signal,
      };
      const a = await this.request(spec);
      const text = await readAll(a.res);
      if (a.status === 409) {
        const off = (JSON.parse(text) as { offset?: number }).offset;
        if (typeof off !== "number") throw this.#error(spec, a.status, text);
        s = { ...s, offset: off };
        continue;
      }
      if (a.status !== 200 && a.status !== 422) throw this.#error(spec, a.status, text);
      sent += end - start;
      s = JSON.parse(text) as UploadStatus;
      options.onProgress?.(s.offset, size);
    }
  }
}

/** Reads a whole (small) answer body. */
async function readAll(res: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res) {
    n += (c as Buffer).length;
    if (n <= 4 * 1024 * 1024) chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * A client from cncop3.ini's `[network]` section.
 *
 * @throws {ConfigError} when url or token is missing.
 */
export function clientFromConfig(
  config: {
    network: { url: string | undefined; token: string | undefined; caFile: string | undefined };
  },
  options: Omit<ClientOptions, "url" | "token" | "caFile"> = {},
): NetworkClient {
  const { url, token, caFile } = config.network;
  if (!url) {
    throw new ConfigError("no cncop network configured", {
      hint: "set [network] url in cncop3.ini",
    });
  }
  return new NetworkClient({ ...options, url, token: token ?? "", ...(caFile ? { caFile } : {}) });
}
