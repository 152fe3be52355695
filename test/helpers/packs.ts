/**
 * Pack entries for tests.
 *
 * @module
 */
import type { PackHeader } from "../../src/ccs/pack_format.ts";
import { baseHeader } from "../../src/ccs/pack_writer.ts";
import { native } from "../../src/native/mod.ts";

/** The header of an add of `body` at `path` in `job` (mtime and mode fixed unless given). */
export function addHeader(
  job: string,
  path: string,
  body: Uint8Array,
  o: { mtimeNs?: string; mode?: number } = {},
): PackHeader {
  return Object.assign(baseHeader("add", { job, path }), {
    size: body.length,
    bodySize: body.length,
    hash: native.blake3(body),
    mtimeNs: o.mtimeNs ?? "1700000000000000000",
    mode: o.mode ?? 0o644,
  });
}
