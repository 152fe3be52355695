/**
 * What the CCS agent needs from the network beyond `NetworkClient`'s one-call upload: an
 * upload driven one chunk at a time, so the dequeuer can go round-robin over many packs
 * ("chunk multitasking") and one huge file does not hold back the small ones.
 *
 * Same protocol as `NetworkClient.uploadPack` (src/network/upload.ts): POST creates or
 * resumes the upload by id, PATCH sends bytes at `upload-offset`, the answer after the last
 * byte says whether the network applied or rejected the pack.
 *
 * @module
 */
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { Readable } from "node:stream";
import { CncopError, PackRejectedError, TransientError } from "../core/errors.ts";
import type { CncopConfig } from "../core/config.ts";
import {
  clientFromConfig,
  type NetworkClient,
  type PackResult,
  type UploadStatus,
} from "../network/client.ts";

/**
 * The network client of the CCS programs. `CNCOP_NETWORK_RETRIES` and
 * `CNCOP_NETWORK_BACKOFF_MS` shorten the client's retries (default 5, from 500 ms), e.g. for
 * tests that take the network down.
 */
export function agentClient(
  config: CncopConfig,
  env: Record<string, string | undefined> = process.env,
): NetworkClient {
  const retries = Number(env.CNCOP_NETWORK_RETRIES);
  const backoff = Number(env.CNCOP_NETWORK_BACKOFF_MS);
  return clientFromConfig(config, {
    ...(env.CNCOP_NETWORK_RETRIES && Number.isInteger(retries) ? { retries } : {}),
    ...(env.CNCOP_NETWORK_BACKOFF_MS && Number.isFinite(backoff) ? { backoffMs: backoff } : {}),
  });
}

/** An upload in progress. */
export interface ChunkedUpload {
  job: string;
  packPath: string;
  id: string;
  size: number;
  offset: number;
  /** Offset the network already had when this run started. */
  resumedFrom: number;
  state: "open" | "applied" | "rejected";
  result?: PackResult;
  error?: string;
  /** Bytes this run sent. */
  sent: number;
}

/** The upload id of a pack: its SHA-256 trailer, so the same pack always resumes. */
async function trailerId(packPath: string): Promise<{ id: string; size: number }> {
  const fh = await open(packPath, "r");
  try {
    const size = (await fh.stat()).size;
    const t = Buffer.alloc(32);
    await fh.read(t, 0, 32, Math.max(0, size - 32));
    return { id: t.toString("hex"), size };
  } finally {
    await fh.close();
  }
}

/** Starts or resumes the upload of `packPath` to `job`. */
export async function beginUpload(
  client: NetworkClient,
  job: string,
  packPath: string,
): Promise<ChunkedUpload> {
  const { id, size } = await trailerId(packPath);
  const s = await client.json<UploadStatus>({
    method: "POST",
    path: `/v1/jobs/${encodeURIComponent(job)}/uploads`,
    headers: { "content-type": "application/json" },
    body: Buffer.from(JSON.stringify({ id, size })),
  });
  return {
    job,
    packPath,
    id,
    size,
    offset: s.offset,
    resumedFrom: s.offset,
    state: s.state,
    result: s.result,
    error: s.error,
    sent: 0,
  };
}

/**
 * Sends the next chunk (at most `chunkSize` bytes) of `u` and updates it.
 *
 * @throws {PackRejectedError} when the network rejected the pack.
 * @throws {TransientError} when the network is unreachable.
 */
export async function sendChunk(
  client: NetworkClient,
  u: ChunkedUpload,
  chunkSize: number,
): Promise<void> {
  if (u.state === "rejected") {
    throw new PackRejectedError(`the network rejected ${u.packPath}: ${u.error ?? "invalid"}`);
  }
  if (u.state === "applied") return;
  const start = u.offset;
  const end = Math.min(u.size, start + Math.max(1, chunkSize));
  const a = await client.request({
    method: "PATCH",
    path: `/v1/jobs/${encodeURIComponent(u.job)}/uploads/${encodeURIComponent(u.id)}`,
    headers: {
      "upload-offset": String(start),
      "content-type": "application/octet-stream",
      "content-length": String(end - start),
    },
    body: () =>
      end > start ? createReadStream(u.packPath, { start, end: end - 1 }) : Readable.from([]),
  });
  let text = "";
  for await (const c of a.res) text += (c as Buffer).toString("utf8");
  let body: Partial<UploadStatus> & { error?: string } = {};
  try {
    body = JSON.parse(text);
  } catch { /* not JSON */ }
  if (a.status === 409 && typeof body.offset === "number") {
    u.offset = body.offset;
    return;
  }
  if (a.status === 404) {
    // The network forgot the upload (expired): start over on the next call.
    throw new TransientError(`the network lost the upload of ${u.packPath}; it restarts`);
  }
  if (a.status !== 200 && a.status !== 422) {
    throw new CncopError(
      `the cncop network answered ${a.status} to an upload${body.error ? ` (${body.error})` : ""}`,
    );
  }
  u.sent += end - start;
  u.offset = body.offset ?? end;
  u.state = body.state ?? "open";
  u.result = body.result;
  u.error = body.error;
  if (u.state === "rejected") {
    throw new PackRejectedError(`the network rejected ${u.packPath}: ${u.error ?? "invalid"}`);
  }
}
