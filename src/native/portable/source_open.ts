/**
 * Opening the files being backed up for reading without changing them: `O_NOATIME` where
 * the system has it (Linux), so a read does not move the access time (the native core's
 * `source.rs` does the same). The flag needs the file's owner or CAP_FOWNER: without, the
 * file is opened as usual.
 *
 * @module
 */
import { constants, openSync } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";

const NOATIME: number | undefined = (constants as { O_NOATIME?: number }).O_NOATIME;

function refused(err: unknown): boolean {
  return (err as { code?: string }).code === "EPERM";
}

/** Opens `path` for reading (a descriptor), leaving its access time alone where allowed. */
export function openSourceSync(path: string): number {
  if (NOATIME === undefined) return openSync(path, "r");
  try {
    return openSync(path, constants.O_RDONLY | NOATIME);
  } catch (err) {
    if (!refused(err)) throw err;
    return openSync(path, "r");
  }
}

/** Opens `path` for reading, leaving its access time alone where allowed. */
export async function openSource(path: string): Promise<FileHandle> {
  if (NOATIME === undefined) return await open(path, "r");
  try {
    return await open(path, constants.O_RDONLY | NOATIME);
  } catch (err) {
    if (!refused(err)) throw err;
    return await open(path, "r");
  }
}
