/**
 * The pack instruction file format (docs/formats/pack.md): constants, the header type and
 * its validation. Shared by {@link ./pack_writer.ts} and {@link ./pack_reader.ts}, so the
 * enqueuer and the network accept exactly the same files.
 *
 * Layout (format 2): `MAGIC` (8 bytes) | entries | a zero u32 (end of entries) |
 * SHA-256 of every byte before it (32 bytes). An entry is: header length (u32 BE) |
 * header (JSON, UTF-8) | body frames (u32 BE length + compressed bytes, ended by a zero
 * length). Format 1 is one entry without the end-of-entries marker; readers still take it.
 *
 * @module
 */
import { PackRejectedError } from "../core/errors.ts";

/** The format version this code writes (it also reads format 1). */
export const PACK_FORMAT = 2;
/** First 8 bytes of every pack: "CNCOPPK" and the format version byte. */
export const PACK_MAGIC: Uint8Array = new Uint8Array([
  0x43,
  0x4e,
  0x43,
  0x4f,
  0x50,
  0x50,
  0x4b,
  PACK_FORMAT,
]);
/** Format versions readers accept. */
export const READABLE_FORMATS: readonly number[] = [1, 2];
/** Most entries in one pack. */
export const MAX_ENTRIES = 100_000;
/** Largest header accepted, in bytes. */
export const MAX_HEADER_BYTES = 64 * 1024;
/** Largest body frame accepted (compressed bytes). */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024;
/** Bytes of the trailing SHA-256. */
export const TRAILER_BYTES = 32;
/** Longest path accepted, in UTF-8 bytes. */
export const MAX_PATH_BYTES = 4096;
/** Default largest declared body size (64 GiB); a reader may lower it. */
export const DEFAULT_MAX_BODY = 64 * 1024 * 1024 * 1024;
/** zstd window limit for decompression (2^23 = 8 MiB) - bounds the reader's memory. */
export const ZSTD_WINDOW_LOG_MAX = 23;

/** What a pack does. */
export type PackKind = "add" | "update" | "move" | "delete";
/** Body compression. */
export type PackCompression = "zstd" | "none";

/** The header of a pack instruction file, as stored (JSON). */
export interface PackHeader {
  /** The pack file's format version ({@link PACK_FORMAT} when written here). */
  format: number;
  kind: PackKind;
  /** The device's job key (e.g. "7"). */
  job: string;
  /** Relative `/`-separated path the pack acts on (for move: the old path). */
  path: string;
  /** For move: the new path. */
  newPath?: string;
  /** For move and delete: `path` is a folder; acts on everything under it. */
  folder?: boolean;
  /** Size of the target content (add, update); 0 otherwise. */
  size: number;
  /** Modification time of the target, nanoseconds since the epoch, decimal string. */
  mtimeNs: string;
  /** st_mode permission bits of the target. */
  mode: number;
  /** BLAKE3-256 hex of the target content (add, update); "" otherwise. */
  hash: string;
  /** For update: the version id the delta applies to. */
  base?: number;
  /** For update: BLAKE3 hex of the base content (checked by the network when given). */
  baseHash?: string;
  /** Uncompressed body bytes: the content (add), the delta (update), 0 (move, delete). */
  bodySize: number;
  compression: PackCompression;
  /** Creating program and its version. */
  program: string;
  programVersion: string;
  /** When the pack was written (ISO 8601). */
  created: string;
}

const utf8 = new TextEncoder();
const KINDS: readonly string[] = ["add", "update", "move", "delete"];
const HEX64 = /^[0-9a-f]{64}$/;
const DECIMAL = /^(0|[1-9][0-9]{0,19})$/;
const JOB_KEY = /^[A-Za-z0-9._-]{1,128}$/;
/**
 * An empty, `.` or `..` segment between separators (`/` or a backslash) or the path's ends: one
 * test, where splitting made an array of every path's segments (twice per file packed).
 */
const BAD_SEGMENT = /(?:^|[/\\])\.{0,2}(?:[/\\]|$)/;

/**
 * Checks that a path is relative, `/`-separated and harmless: no `..` or `.` segment, no
 * empty segment, no leading `/`, no NUL or other control character, no drive letter.
 *
 * @throws {PackRejectedError} naming what is wrong.
 */
export function checkPackPath(path: unknown, field = "path"): string {
  if (typeof path !== "string" || path.length === 0) {
    throw new PackRejectedError(`pack ${field} is missing`);
  }
  // A UTF-16 unit is at most 3 UTF-8 bytes: most paths need no encoding to be measured.
  if (path.length * 3 > MAX_PATH_BYTES && utf8.encode(path).length > MAX_PATH_BYTES) {
    throw new PackRejectedError(`pack ${field} is longer than ${MAX_PATH_BYTES} bytes`);
  }
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f]/.test(path)) {
    throw new PackRejectedError(`pack ${field} contains a NUL or control character`);
  }
  if (path.startsWith("/") || path.startsWith("\\") || /^[A-Za-z]:/.test(path)) {
    throw new PackRejectedError(`pack ${field} ${JSON.stringify(path)} is absolute`);
  }
  if (BAD_SEGMENT.test(path)) {
    throw new PackRejectedError(
      `pack ${field} ${JSON.stringify(path)} has an empty, '.' or '..' segment`,
    );
  }
  return path;
}

function isSafeInt(v: unknown, max = Number.MAX_SAFE_INTEGER): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 && v <= max;
}

/**
 * Validates a parsed header object and returns it typed.
 *
 * @throws {PackRejectedError} on any missing, malformed or hostile field.
 */
export function validateHeader(
  raw: unknown,
  maxBody = DEFAULT_MAX_BODY,
  format = PACK_FORMAT,
): PackHeader {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new PackRejectedError("pack header is not a JSON object");
  }
  const h = raw as Record<string, unknown>;
  const bad = (what: string): never => {
    throw new PackRejectedError(`pack header: ${what}`);
  };
  if (h.format !== format) bad(`format ${JSON.stringify(h.format)} in a format ${format} pack`);
  if (typeof h.kind !== "string" || !KINDS.includes(h.kind)) {
    bad(`unknown kind ${JSON.stringify(h.kind)}`);
  }
  const kind = h.kind as PackKind;
  if (typeof h.job !== "string" || !JOB_KEY.test(h.job)) bad("job key is missing or invalid");
  checkPackPath(h.path);
  if (kind === "move") checkPackPath(h.newPath, "newPath");
  else if (h.newPath !== undefined) bad("newPath is only allowed in a move");
  if (h.folder !== undefined && typeof h.folder !== "boolean") bad("folder must be a boolean");
  if (h.folder && kind !== "move" && kind !== "delete") bad("folder is only for move and delete");
  if (!isSafeInt(h.size)) bad("size must be a non-negative integer");
  if (typeof h.mtimeNs !== "string" || !DECIMAL.test(h.mtimeNs)) bad("mtimeNs must be decimal");
  if (!isSafeInt(h.mode, 0o7777777)) bad("mode is invalid");
  if (!isSafeInt(h.bodySize)) bad("bodySize must be a non-negative integer");
  if ((h.bodySize as number) > maxBody) {
    throw new PackRejectedError(
      `pack body of ${h.bodySize} bytes is larger than the limit of ${maxBody} bytes`,
    );
  }
  if (h.compression !== "zstd" && h.compression !== "none") {
    bad(`unknown compression ${JSON.stringify(h.compression)}`);
  }
  if (typeof h.program !== "string" || h.program.length > 256) bad("program is missing");
  if (typeof h.programVersion !== "string" || h.programVersion.length > 256) {
    bad("programVersion is missing");
  }
  if (typeof h.created !== "string" || h.created.length > 64) bad("created is missing");
  if (kind === "add" || kind === "update") {
    if (typeof h.hash !== "string" || !HEX64.test(h.hash)) bad("hash must be BLAKE3 hex");
    if (kind === "add" && h.bodySize !== h.size) bad("an add's bodySize must equal its size");
  } else {
    if (h.hash !== "") bad(`a ${kind} carries no hash`);
    if (h.bodySize !== 0) bad(`a ${kind} carries no body`);
  }
  if (kind === "update") {
    if (!isSafeInt(h.base) || h.base === 0) bad("an update needs a base version id");
    if (h.baseHash !== undefined && (typeof h.baseHash !== "string" || !HEX64.test(h.baseHash))) {
      bad("baseHash must be BLAKE3 hex");
    }
  } else if (h.base !== undefined || h.baseHash !== undefined) {
    bad(`a ${kind} has no base`);
  }
  return h as unknown as PackHeader;
}
