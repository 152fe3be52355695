/**
 * The blob storage interface of the cncop network. Blobs are content-addressed (BLAKE3
 * hex) and deduplicated per device. The API code only sees this interface, so a second
 * backend (an S3-compatible object store) can be added beside `storage_local.ts`.
 *
 * @module
 */
import type { Readable } from "node:stream";
import type { PackedBlob } from "./small_blobs.ts";

/** A byte range, both ends inclusive (as in HTTP `Range`). */
export interface ByteRange {
  start: number;
  end: number;
}

/** A verified pack file kept as the container of its small blobs' frames. */
export interface KeptPack {
  /** Where the verified pack is now. */
  path: string;
  /** SHA-256 hex of the pack (its trailer): its name once kept. */
  sha256: string;
}

/** What {@link BlobStore.sweepPacks} did. */
export interface PackSweep {
  /** Kept packs removed, and their bytes. */
  removed: number;
  bytes: number;
  /** Blobs moved out of mostly unused packs before those were removed. */
  unpacked: number;
}

/** Where blobs live. Every method is safe to call concurrently. */
export interface BlobStore {
  /** Backend name ("local", "s3"). */
  readonly name: string;
  /** Size of a blob, or undefined when absent. */
  size(device: number, hash: string): Promise<number | undefined>;
  /**
   * Stores each `file` (already verified to hash to its `hash`) durably as that blob, with
   * one durability barrier for all of them. Consumes the files (moved or removed). Resolves
   * only once the blobs survive a crash. A blob already there (as a file or a small blob)
   * only has its age refreshed, so a concurrent prune keeps it.
   */
  putMany(device: number, blobs: readonly { hash: string; file: string }[]): Promise<void>;
  /**
   * Stores small blobs (at most 1 MiB each) as the frames they arrived in, kept where they
   * lie in the verified pack `pack` (which stays, under its SHA-256), in one durable step.
   * Like {@link putMany}, a blob already there only has its age refreshed.
   */
  putPacked(device: number, pack: KeptPack, blobs: readonly PackedBlob[]): Promise<void>;
  /**
   * Removes kept packs not changed since `olderThanMs` whose blobs are all gone; one whose
   * referenced frames are less than half of those it was kept for has them moved out first.
   */
  sweepPacks(olderThanMs: number): Promise<PackSweep>;
  /** Reads a blob (or a range of it). */
  read(device: number, hash: string, range?: ByteRange): Readable;
  /** A local file path with the blob's content (for patching); call `release` when done. */
  localPath(device: number, hash: string): Promise<{ path: string; release(): Promise<void> }>;
  /** Removes a blob if its last change is older than `olderThanMs`; true when removed. */
  remove(device: number, hash: string, olderThanMs: number): Promise<boolean>;
  /** Every stored blob. */
  list(): AsyncIterable<{ device: number; hash: string; size: number }>;
  /** A private directory for temp files on the same filesystem as the blobs. */
  readonly tmpDir: string;
}
