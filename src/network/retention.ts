/**
 * Retention: `cncopd prune` removes versions that ended longer ago than their job's
 * retention, then blobs no version references. A blob changed within the grace period is
 * kept, because a running server may be about to commit a version that uses it.
 *
 * @module
 */
import type { DataDir } from "./data_dir.ts";

/** What a prune removed. */
export interface PruneResult {
  versions: number;
  blobs: number;
  bytes: number;
  /** Kept packs removed (their blobs all gone, or the few left moved out), and their bytes. */
  packs: number;
  packBytes: number;
}

/** Blobs checked against the versions at a time (one scan of the versions each; the grace
 * period counts from the check, so a batch may take long to remove). */
const PRUNE_BATCH = 100_000;

/** Prunes expired versions and unreferenced blobs. */
export async function prune(
  data: DataDir,
  options: { now?: number; graceMs?: number } = {},
): Promise<PruneResult> {
  const now = options.now ?? Date.now();
  const grace = options.graceMs ?? 3600_000;
  const versions = data.catalog.tx(() => data.catalog.pruneVersions(now));
  data.catalog.pruneUploads(now - 7 * 86400_000);
  let blobs = 0;
  let bytes = 0;
  // In batches: each is checked against the versions just before its blobs are removed.
  let batch: { device: number; hash: string; size: number }[] = [];
  const sweep = async () => {
    // The grace period counts from the check, not from each removal: a blob touched by an
    // apply just before the check, whose version commits after it, is kept.
    const cutoff = Date.now() - grace;
    const used = data.catalog.referencedAmong(batch);
    for (const b of batch) {
      if (used.has(`${b.device}:${b.hash}`)) continue;
      if (await data.blobs.remove(b.device, b.hash, cutoff)) {
        blobs++;
        bytes += b.size;
      }
    }
    batch = [];
  };
  for await (const b of data.blobs.list()) {
    batch.push(b);
    if (batch.length >= PRUNE_BATCH) await sweep();
  }
  await sweep();
  const packs = await data.blobs.sweepPacks(Date.now() - grace);
  return { versions, blobs, bytes, packs: packs.removed, packBytes: packs.bytes };
}
