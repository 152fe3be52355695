/**
 * Peek: the source walk, the cloud listing and their difference.
 *
 * The walk's files go into `local_files` and the cloud's into `cloud_files` of work.db, and
 * SQL joins give the ADD, changed and DELETE sets, so a tree of a million files never has to
 * sit in memory twice. A file whose size and mtime equal the cloud's is unchanged and is not
 * read.
 *
 * @module
 */
import { closeSync, openSync, statSync, writeSync } from "node:fs";
import type { Job } from "../core/jobs_db.ts";
import type { Logger } from "../core/log.ts";
import { native, type WalkOptions } from "../native/mod.ts";
import type { RemoteFile } from "../network/client.ts";
import type { CloudFile, LocalFile, WorkDb } from "./work_queue.ts";

/** Options that shape the walk. */
export interface WalkChoice {
  /** `--nolinks`: skip symlinks (default: follow them). */
  noLinks?: boolean;
  /** `--nicld`: do not log files left out by the include filters. */
  nicld?: boolean;
}

/** The native walk options for `job`. */
export function walkOptionsFor(job: Job, c: WalkChoice, reportExcluded: boolean): WalkOptions {
  return {
    followLinks: !c.noLinks,
    skipLinks: c.noLinks === true,
    include: job.include,
    exclude: job.exclude,
    reportExcluded,
  };
}

/** What identifies the source a peek state was taken from. */
export function fingerprintOf(job: Job, c: WalkChoice): string {
  return JSON.stringify([job.source, job.include, job.exclude, c.noLinks === true]);
}

/** Whether `root` is an existing directory. */
export function rootExists(root: string): boolean {
  try {
    return statSync(root).isDirectory();
  } catch {
    return false;
  }
}

/** Summary of a walk. */
export interface ScanSummary {
  files: number;
  dirs: number;
  bytes: number;
  errors: number;
  excluded: number;
  /** Files + directories. */
  entries: number;
  /** Newest mtime of any file or directory (ns). */
  newestNs: bigint;
  /** The entry with that mtime ("" for the root). */
  newestPath?: string;
}

function emptySummary(): ScanSummary {
  return { files: 0, dirs: 0, bytes: 0, errors: 0, excluded: 0, entries: 0, newestNs: 0n };
}

/**
 * Walks `root` for the newest last-write time only (no database, no hashing): what the
 * skip-when-unchanged test needs. The root directory itself counts.
 */
export async function quickScan(root: string, options: WalkOptions): Promise<ScanSummary> {
  const s = emptySummary();
  s.newestNs = BigInt(statSync(root, { bigint: true }).mtimeNs);
  for await (const batch of native.walk(root, { ...options, reportExcluded: false })) {
    for (const e of batch) {
      if (e.kind === "error") {
        s.errors++;
        continue;
      }
      if (e.kind !== "file" && e.kind !== "dir") continue;
      if (e.kind === "file") {
        s.files++;
        s.bytes += e.size;
      } else s.dirs++;
      s.entries++;
      if (e.mtimeNs > s.newestNs) {
        s.newestNs = e.mtimeNs;
        s.newestPath = e.path;
      }
    }
  }
  return s;
}

/**
 * Walks `root` into the saved source listing of `job`, logging walk errors and (unless
 * `nicld`) files the include filters leave out as PEEK-NICLD lines.
 */
export async function scanSource(
  work: WorkDb,
  job: number,
  root: string,
  options: WalkOptions,
  log: Logger,
  nicld: boolean,
): Promise<ScanSummary> {
  const s = emptySummary();
  s.newestNs = BigInt(statSync(root, { bigint: true }).mtimeNs);
  work.tx(() => work.clearLocal(job));
  for await (const batch of native.walk(root, options)) {
    const files: LocalFile[] = [];
    for (const e of batch) {
      if (e.kind === "error") {
        s.errors++;
        log.warn(`PEEK-ERROR ${e.path}: ${e.error ?? "unreadable"}`);
        continue;
      }
      if (e.excluded) {
        s.excluded++;
        if (!nicld) log.info(`PEEK-NICLD ${e.path}`);
        continue;
      }
      if (e.kind !== "file" && e.kind !== "dir") continue;
      s.entries++;
      if (e.mtimeNs > s.newestNs) s.newestNs = e.mtimeNs;
      if (e.kind === "dir") {
        s.dirs++;
        continue;
      }
      s.files++;
      s.bytes += e.size;
      files.push({
        path: e.path,
        size: e.size,
        mtimeNs: String(e.mtimeNs),
        mode: e.mode & 0o7777,
        ino: String(e.ino),
        dev: String(e.dev),
      });
    }
    if (files.length) work.tx(() => work.putLocal(job, files));
  }
  return s;
}

function xmlEscape(s: string): string {
  return s.replace(/[<>&"]/g, (c) => `&${{ "<": "lt", ">": "gt", "&": "amp", '"': "quot" }[c]};`);
}

/** Writes a cloud peek as XML, one `<file/>` per line (`--savepeek`, `--peeklog`). */
export class PeekXmlWriter {
  #fd: number;
  constructor(path: string, job: string, fd?: number) {
    this.#fd = fd ?? openSync(path, "w", 0o644);
    writeSync(
      this.#fd,
      `<?xml version="1.0" encoding="UTF-8"?>\n<peek job="${xmlEscape(job)}" at="${
        new Date().toISOString()
      }">\n`,
    );
  }
  add(f: CloudFile): void {
    writeSync(
      this.#fd,
      `  <file path="${
        xmlEscape(f.path)
      }" size="${f.size}" mtimeNs="${f.mtimeNs}" mode="${f.mode}" hash="${f.hash}" version="${f.version}"/>\n`,
    );
  }
  close(): void {
    writeSync(this.#fd, "</peek>\n");
    closeSync(this.#fd);
  }
}

/** Turns the network's listing into cloud rows, teeing them to XML writers. */
export async function* cloudRows(
  listing: AsyncIterable<RemoteFile>,
  writers: PeekXmlWriter[],
): AsyncIterable<CloudFile> {
  for await (const r of listing) {
    const f: CloudFile = {
      path: r.path,
      size: r.size,
      mtimeNs: String(r.mtimeNs),
      mode: r.mode,
      hash: r.hash,
      version: r.version,
    };
    for (const w of writers) w.add(f);
    yield f;
  }
}

/** A local file with its cloud counterpart, when there is one. */
export interface DiffRow extends LocalFile {
  cloudSize: number | null;
  cloudMtimeNs: string | null;
  cloudHash: string | null;
  cloudVersion: number | null;
}

/** The difference between the saved listings. */
export interface Diff {
  /** Local files the cloud does not have. */
  adds: DiffRow[];
  /** Files whose size or mtime differ from the cloud's. */
  changed: DiffRow[];
  /** Cloud files gone locally, by path. */
  deletes: CloudFile[];
  unchanged: number;
}

/** Compares the saved source and cloud listings of `job`. */
export function diffListings(work: WorkDb, job: number): Diff {
  const rows = work.stmt(
    `SELECT l.path, l.size, l.mtime_ns AS mtimeNs, l.mode, l.ino, l.dev,
            c.size AS cloudSize, c.mtime_ns AS cloudMtimeNs, c.hash AS cloudHash,
            c.version AS cloudVersion
     FROM local_files l LEFT JOIN cloud_files c ON c.job = l.job AND c.path = l.path
     WHERE l.job = ? AND (c.path IS NULL OR c.size != l.size OR c.mtime_ns != l.mtime_ns)
     ORDER BY l.path`,
  ).all(job) as unknown as DiffRow[];
  const adds = rows.filter((r) => r.cloudVersion === null);
  const changed = rows.filter((r) => r.cloudVersion !== null);
  const deletes = work.stmt(
    `SELECT c.path, c.size, c.mtime_ns AS mtimeNs, c.mode, c.hash, c.version
     FROM cloud_files c LEFT JOIN local_files l ON l.job = c.job AND l.path = c.path
     WHERE c.job = ? AND l.path IS NULL ORDER BY c.path`,
  ).all(job) as unknown as CloudFile[];
  const total = work.localCount(job);
  return { adds, changed, deletes, unchanged: total - rows.length };
}
