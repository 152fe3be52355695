/**
 * Crash-safe file operations: data is fsynced before it is renamed into place, and the
 * directory is fsynced after, so a kill -9 or power cut leaves the old file or the new one.
 *
 * @module
 */
import { open } from "node:fs/promises";

/** fsyncs a file. */
export async function syncFile(path: string): Promise<void> {
  const fh = await open(path, "r+");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsyncs a directory, so a rename or create inside it is durable (no-op on Windows). */
export async function syncDir(dir: string): Promise<void> {
  if (process.platform === "win32") return;
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
