/**
 * Portable twin of the native durability barrier: JavaScript has no `syncfs`, so it only
 * checks the path and answers false, and callers fsync file by file.
 *
 * @module
 */
import { stat } from "node:fs/promises";

/** Always false (no file-system-wide flush without the addon); throws when `path` is missing. */
export async function syncFs(path: string): Promise<boolean> {
  await stat(path);
  return false;
}
