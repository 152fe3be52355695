/**
 * The local signature cache, `Spool/Work/sigs/<content hash>.sig`: the block signature of
 * every file content the dequeuer saw the network apply, so the next change to that file is
 * packed as a delta without asking the network for the base's signature.
 *
 * Keyed by content hash (not version id): a move gives a file a new version id on the
 * network, but its content and so its signature stay the same.
 *
 * @module
 */
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { TransientError } from "../core/errors.ts";
import { native } from "../native/mod.ts";
import type { NetworkClient } from "../network/client.ts";

/** The cache directory inside `workDir`. */
export function sigDir(workDir: string): string {
  return join(workDir, "sigs");
}

/** Where the signature of content `hash` is kept. */
export function sigPath(workDir: string, hash: string): string {
  return join(sigDir(workDir), `${hash}.sig`);
}

/** Files this small are not worth a signature: a pack-add is about as small as a delta. */
export const MIN_SIG_SIZE = 16 * 1024;

/** Writes the signature of `file` to `out` (a pending signature, beside its pack). */
export async function writeSignature(file: string, out: string): Promise<void> {
  await native.signature(file, out, 0);
}

/** Moves a pending signature into the cache once its content is on the network. */
export function storeSignature(workDir: string, pending: string, hash: string): void {
  mkdirSync(sigDir(workDir), { recursive: true });
  try {
    renameSync(pending, sigPath(workDir, hash));
  } catch {
    rmSync(pending, { force: true });
  }
}

/**
 * The signature of the network's version `version` (content `hash`): from the cache, else
 * fetched from the network into the cache. Returns its path.
 */
export async function baseSignature(
  workDir: string,
  client: NetworkClient | undefined,
  job: string,
  version: number,
  hash: string,
): Promise<{ path: string; fetched: boolean } | undefined> {
  const p = sigPath(workDir, hash);
  if (existsSync(p)) return { path: p, fetched: false };
  if (!client) return undefined;
  mkdirSync(sigDir(workDir), { recursive: true });
  const tmp = `${p}.tmp-${process.pid}`;
  try {
    await client.fetchSignature(job, version, tmp);
    renameSync(tmp, p);
    return { path: p, fetched: true };
  } catch (err) {
    rmSync(tmp, { force: true });
    if (err instanceof TransientError) throw err;
    return undefined;
  }
}
