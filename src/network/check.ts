/**
 * `cncopd check`: every blob a version references exists and hashes to its name, and every
 * stored blob hashes to its name.
 *
 * @module
 */
import { createBLAKE3 } from "hash-wasm";
import type { DataDir } from "./data_dir.ts";

/** One problem found. */
export interface CheckProblem {
  device: number;
  hash: string;
  problem: "missing" | "corrupt" | "size";
}

/** What a check found. */
export interface CheckResult {
  blobs: number;
  bytes: number;
  problems: CheckProblem[];
}

/** Verifies the data directory's blobs against the catalog and their hashes. */
export async function checkData(data: DataDir): Promise<CheckResult> {
  const problems: CheckProblem[] = [];
  const seen = new Set<string>();
  let blobs = 0;
  let bytes = 0;
  const h = await createBLAKE3(256);
  for await (const b of data.blobs.list()) {
    seen.add(`${b.device}/${b.hash}`);
    h.init();
    let readable = true;
    try {
      for await (const chunk of data.blobs.read(b.device, b.hash)) h.update(chunk as Buffer);
    } catch {
      readable = false; // e.g. a small blob whose zstd frame no longer decodes
    }
    if (!readable || h.digest("hex") !== b.hash) {
      problems.push({ device: b.device, hash: b.hash, problem: "corrupt" });
    }
    blobs++;
    bytes += b.size;
  }
  for (const r of data.catalog.referencedBlobs()) {
    if (!seen.has(`${r.device_id}/${r.hash}`)) {
      problems.push({ device: r.device_id, hash: r.hash, problem: "missing" });
    } else if ((await data.blobs.size(r.device_id, r.hash)) !== r.size) {
      problems.push({ device: r.device_id, hash: r.hash, problem: "size" });
    }
  }
  return { blobs, bytes, problems };
}
