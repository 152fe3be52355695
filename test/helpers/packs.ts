/**
 * Pack entries and the pack phase's context for tests.
 *
 * @module
 */
import type { Logger } from "../../src/core/log.ts";
import { FileStates } from "../../src/ccs/file_state.ts";
import type { PackContext } from "../../src/ccs/pack.ts";
import type { PackHeader } from "../../src/ccs/pack_format.ts";
import { baseHeader } from "../../src/ccs/pack_writer.ts";
import type { WorkDb } from "../../src/ccs/work_queue.ts";
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

/**
 * The pack phase's context for a test: job 1 (key "1") of `root`, packs in `workDir`, no
 * network and no forks; `extra` adds or overrides.
 */
export function testPackContext(
  work: WorkDb,
  workDir: string,
  root: string,
  log: Logger,
  extra: Partial<PackContext> = {},
): PackContext {
  return {
    work,
    workDir,
    job: 1,
    jobKey: "1",
    root,
    client: undefined,
    states: new FileStates(work, 1, false),
    log,
    suppressMissing: false,
    ...extra,
  };
}
