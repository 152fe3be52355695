/**
 * Small blobs (at most {@link SMALL_BLOB_MAX} bytes) kept in one SQLite file,
 * `blobs/small.db`, each as the zstd frame it arrived in. A pack of thousands of small
 * files then costs one transaction, not a file, a rename and a folder per blob; SQLite
 * reads and writes blobs of this size faster than the file system does.
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { transaction } from "../core/sqlite.ts";

/** Largest blob kept here; larger ones are files. */
export const SMALL_BLOB_MAX = 1024 * 1024;

/** A small blob as it is stored: the pack entry's body frame. */
export interface SmallBlob {
  hash: string;
  /** Uncompressed size. */
  size: number;
  compression: "zstd" | "none";
  frame: Uint8Array;
}

/** Decompresses a zstd frame into exactly `size` bytes. */
export type Inflate = (frame: Uint8Array, size: number) => Uint8Array;

const SCHEMA = `CREATE TABLE IF NOT EXISTS small (
  device INTEGER NOT NULL,
  hash TEXT NOT NULL,
  size INTEGER NOT NULL,
  compression TEXT NOT NULL CHECK (compression IN ('zstd', 'none')),
  frame BLOB NOT NULL,
  touched INTEGER NOT NULL,
  PRIMARY KEY (device, hash)
)`;

/** The small-blob database of one data directory, opened at first use. */
export class SmallBlobs {
  readonly #path: string;
  #conn: DatabaseSync | undefined;
  readonly #inflate: Inflate;
  readonly #stmts = new Map<string, StatementSync>();

  constructor(path: string, inflate: Inflate) {
    this.#path = path;
    this.#inflate = inflate;
  }

  get #db(): DatabaseSync {
    if (this.#conn) return this.#conn;
    const db = new DatabaseSync(this.#path);
    try {
      db.exec("PRAGMA busy_timeout = 10000");
      // Pages that hold a typical frame without overflow pages (takes effect on creation).
      db.exec("PRAGMA page_size = 16384");
      // A rollback journal, not WAL: rows are appended in large batches, and WAL would write
      // every frame twice (log, then checkpoint). Readers are rare (restore, check). Asked
      // for before anything else, so a second process opening the file never has to switch
      // modes (which needs the file to itself) while the server writes.
      db.exec("PRAGMA journal_mode = TRUNCATE");
      db.exec("PRAGMA synchronous = FULL");
      db.exec(SCHEMA);
    } catch (err) {
      db.close();
      throw err;
    }
    return this.#conn = db;
  }

  #stmt(sql: string): StatementSync {
    let s = this.#stmts.get(sql);
    if (!s) this.#stmts.set(sql, s = this.#db.prepare(sql));
    return s;
  }

  /**
   * Stores blobs in one transaction (durable when it returns); one already there only has
   * its age refreshed, so a concurrent prune keeps it.
   */
  putMany(device: number, blobs: readonly SmallBlob[]): void {
    const now = Date.now();
    const put = this.#stmt(
      `INSERT INTO small (device, hash, size, compression, frame, touched) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (device, hash) DO UPDATE SET touched = excluded.touched`,
    );
    transaction(this.#db, () => {
      for (const b of blobs) put.run(device, b.hash, b.size, b.compression, b.frame, now);
    });
  }

  /** Refreshes a blob's age, so a concurrent prune keeps it; false when it is not here. */
  touch(device: number, hash: string): boolean {
    return this.#stmt("UPDATE small SET touched = ? WHERE device = ? AND hash = ?")
      .run(Date.now(), device, hash).changes > 0;
  }

  /** Size of a blob, or undefined when it is not here. */
  size(device: number, hash: string): number | undefined {
    const r = this.#stmt("SELECT size FROM small WHERE device = ? AND hash = ?").get(
      device,
      hash,
    ) as { size: number } | undefined;
    return r?.size;
  }

  /** A blob's content, or undefined when it is not here. */
  get(device: number, hash: string): Uint8Array | undefined {
    const r = this.#stmt(
      "SELECT size, compression, frame FROM small WHERE device = ? AND hash = ?",
    ).get(device, hash) as { size: number; compression: string; frame: Uint8Array } | undefined;
    if (!r) return undefined;
    return r.compression === "zstd" ? this.#inflate(r.frame, r.size) : r.frame;
  }

  /** Removes a blob not touched since `olderThanMs`; true when removed. */
  remove(device: number, hash: string, olderThanMs: number): boolean {
    return this.#stmt("DELETE FROM small WHERE device = ? AND hash = ? AND touched <= ?")
      .run(device, hash, olderThanMs).changes > 0;
  }

  /** Every blob here, a page at a time (the caller may remove rows meanwhile). */
  *list(): Iterable<{ device: number; hash: string; size: number }> {
    const page = this.#stmt(
      `SELECT device, hash, size FROM small WHERE (device, hash) > (?, ?)
       ORDER BY device, hash LIMIT 1000`,
    );
    let after: [number, string] = [-1, ""];
    for (;;) {
      const rows = page.all(...after) as { device: number; hash: string; size: number }[];
      if (rows.length === 0) return;
      yield* rows;
      const last = rows[rows.length - 1]!;
      after = [last.device, last.hash];
    }
  }

  close(): void {
    this.#stmts.clear();
    this.#conn?.close();
    this.#conn = undefined;
  }
}
