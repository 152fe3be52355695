/**
 * Opens (and on first use initialises) a cncopd data directory:
 * `catalog.db` (SQLite, WAL), `blobs/`, `uploads/`, `tmp/`.
 *
 * @module
 */
import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { Catalog } from "./catalog.ts";
import { LocalBlobStore } from "./storage_local.ts";
import type { BlobStore } from "./storage.ts";

/** An open data directory. */
export interface DataDir {
  dir: string;
  catalog: Catalog;
  blobs: BlobStore;
  close(): void;
}

/** Opens `dir`, creating what is missing. Leftover temp files of a crash are removed. */
export async function openDataDir(
  dir: string,
  options: { cleanTmp?: boolean } = {},
): Promise<DataDir> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await mkdir(join(dir, "uploads"), { recursive: true });
  const blobs = new LocalBlobStore(dir);
  await blobs.init();
  if (options.cleanTmp) {
    // Only the server cleans: temp files are never referenced by the catalog.
    for (const f of await readdir(blobs.tmpDir)) await rm(join(blobs.tmpDir, f), { force: true });
  }
  const catalog = new Catalog(join(dir, "catalog.db"));
  return {
    dir,
    catalog,
    blobs,
    close: () => {
      catalog.close();
      blobs.close();
    },
  };
}
