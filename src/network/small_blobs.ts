/**
 * Small blobs (at most {@link SMALL_BLOB_MAX} bytes), indexed in one SQLite file,
 * `blobs/small.db`, each as the zstd frame it arrived in: either the frame itself (table
 * `small`) or where it lies in a kept pack file (table `packed`, see decisions/0048). A
 * pack of thousands of small files then costs one transaction, not a file, a rename and a
 * folder per blob, and its frames are not written a second time.
 *
 * @module
 */
import { closeSync, openSync, readSync } from "node:fs";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { migrateOnce, transaction } from "../core/sqlite.ts";

/** Largest blob kept here; larger ones are files. */
export const SMALL_BLOB_MAX = 1024 * 1024;

/** A small blob kept inside a pack file: where its frame lies there. */
export interface PackedBlob {
  hash: string;
  /** Uncompressed size. */
  size: number;
  compression: "zstd" | "none";
  offset: number;
  length: number;
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

/**
 * A blob's rows are found by the first 12 hex digits of its hash (`HASH_KEY`, an index
 * of about 20 bytes an entry), not by the whole hash: a pack's rows go in with random
 * hashes, and every page of the index they land on is written again at the commit (twice,
 * with the journal). Under a primary key of (device, 64-character hash) a first backup of
 * 84k files wrote 800 MB to a 25 MB database. The table itself grows at its end.
 */
const HASH_KEY = "substr(hash, 1, 12)";
/** Where `packed` holds blob `?2` of device `?1`: found through {@link HASH_KEY}. */
const PACKED_WHERE = `${HASH_KEY} = substr(?2, 1, 12) AND device = ?1 AND hash = ?2`;
/** The same in `small` (keyed by device and hash; rows come only from unpacked packs). */
const SMALL_WHERE = "device = ?1 AND hash = ?2";

const PACKED_TABLE = `CREATE TABLE IF NOT EXISTS packed (
    device INTEGER NOT NULL,
    hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    compression TEXT NOT NULL CHECK (compression IN ('zstd', 'none')),
    pack TEXT NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    touched INTEGER NOT NULL
  )`;

const PACKED = [
  PACKED_TABLE,
  `CREATE INDEX IF NOT EXISTS packed_hash ON packed (${HASH_KEY})`,
  "CREATE INDEX IF NOT EXISTS packed_pack ON packed (device, pack)",
  // What each kept pack held when it was kept: the measure of how much of it is still used.
  `CREATE TABLE IF NOT EXISTS kept_packs (
    device INTEGER NOT NULL,
    pack TEXT NOT NULL,
    blobs INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (device, pack)
  )`,
];

/** Whether `packed` still has the primary key of (device, hash) of its first version. */
function packedHasOldKey(db: DatabaseSync): boolean {
  return db.prepare("SELECT 1 FROM pragma_index_list('packed') WHERE origin = 'pk'")
    .get() !== undefined;
}

/** Rebuilds a first-version `packed` table without its (device, hash) key, rows kept. */
function rekeyPacked(db: DatabaseSync): void {
  db.exec("DROP INDEX IF EXISTS packed_pack");
  db.exec("ALTER TABLE packed RENAME TO packed_v1");
  db.exec(PACKED_TABLE);
  db.exec(
    `INSERT INTO packed (device, hash, size, compression, pack, offset, length, touched)
     SELECT device, hash, size, compression, pack, offset, length, touched FROM packed_v1`,
  );
  db.exec("DROP TABLE packed_v1");
}

/** A kept pack's live frames, for {@link SmallBlobs.packUse}. */
export interface PackUse {
  /** Frames still referenced, and their bytes. */
  blobs: number;
  bytes: number;
  /** Frame bytes it was kept for; undefined when not known. */
  keptBytes?: number;
}

/** The small-blob database of one data directory, opened at first use. */
export class SmallBlobs {
  readonly #path: string;
  #conn: DatabaseSync | undefined;
  readonly #inflate: Inflate;
  readonly #packFile: (device: number, pack: string) => string;
  readonly #stmts = new Map<string, StatementSync>();

  /** `packFile` names the file of a kept pack. */
  constructor(
    path: string,
    inflate: Inflate,
    packFile: (device: number, pack: string) => string,
  ) {
    this.#path = path;
    this.#inflate = inflate;
    this.#packFile = packFile;
  }

  get #db(): DatabaseSync {
    if (this.#conn) return this.#conn;
    const db = new DatabaseSync(this.#path);
    try {
      db.exec("PRAGMA busy_timeout = 10000");
      // Pages that hold a typical frame without overflow pages (takes effect on creation).
      db.exec("PRAGMA page_size = 16384");
      // A rollback journal, not WAL: rows come in large batches (a pack's index rows; the
      // frames of an unpacked pack, which WAL would write twice), and a pack's commit
      // measured no faster in WAL. Readers are rare (restore, check). Asked for before
      // anything else, so a second process opening the file never has to switch modes
      // (which needs the file to itself) while the server writes.
      db.exec("PRAGMA journal_mode = TRUNCATE");
      db.exec("PRAGMA synchronous = FULL");
      db.exec(SCHEMA);
      migrateOnce(db, () => !packedHasOldKey(db), () => rekeyPacked(db));
      for (const sql of PACKED) db.exec(sql);
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
   * Records blobs whose frames lie in the kept pack `pack` (already durable), in one
   * transaction, if `present()` still says the pack is there once the write lock is held
   * (else writes nothing and returns false); a blob already here only has its age refreshed.
   */
  putPacked(
    device: number,
    pack: string,
    blobs: readonly PackedBlob[],
    present: () => boolean = () => true,
  ): boolean {
    const now = Date.now();
    const put = this.#stmt(
      `INSERT INTO packed (device, hash, size, compression, pack, offset, length, touched)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const touchPacked = this.#stmt(`UPDATE packed SET touched = ?3 WHERE ${PACKED_WHERE}`);
    const touchSmall = this.#stmt("UPDATE small SET touched = ? WHERE device = ? AND hash = ?");
    return transaction(this.#db, () => {
      // Under the write lock: a sweep takes a pack away only under it too (see `retire`),
      // so the pack is there for these rows, or they are not written.
      if (!present()) return false;
      // One kept copy: a blob already a `small` row stays one (none there in a data
      // directory that never unpacked a pack, so no lookup per blob then).
      const smalls = this.#stmt("SELECT 1 FROM small LIMIT 1").get() !== undefined;
      for (const b of blobs) {
        if (smalls && Number(touchSmall.run(now, device, b.hash).changes) > 0) continue;
        // One row a blob: one already kept (in another pack, or twice in this one) is
        // only refreshed.
        if (Number(touchPacked.run(device, b.hash, now).changes) > 0) continue;
        put.run(device, b.hash, b.size, b.compression, pack, b.offset, b.length, now);
      }
      this.#stmt(
        `INSERT INTO kept_packs (device, pack, blobs, bytes)
         SELECT ?1, ?2, count(*), coalesce(sum(length), 0) FROM packed
         WHERE device = ?1 AND pack = ?2
         ON CONFLICT (device, pack) DO UPDATE SET blobs = excluded.blobs, bytes = excluded.bytes`,
      ).run(device, pack);
      return true;
    });
  }

  /** Refreshes a blob's age, so a concurrent prune keeps it; false when it is not here. */
  touch(device: number, hash: string): boolean {
    const now = Date.now();
    let n = Number(
      this.#stmt(`UPDATE small SET touched = ?3 WHERE ${SMALL_WHERE}`)
        .run(device, hash, now).changes,
    );
    n += Number(
      this.#stmt(`UPDATE packed SET touched = ?3 WHERE ${PACKED_WHERE}`).run(device, hash, now)
        .changes,
    );
    return n > 0;
  }

  /** Size of a blob, or undefined when it is not here. */
  size(device: number, hash: string): number | undefined {
    for (const [table, where] of [["small", SMALL_WHERE], ["packed", PACKED_WHERE]]) {
      const r = this.#stmt(`SELECT size FROM ${table} WHERE ${where}`).get(device, hash) as
        | { size: number }
        | undefined;
      if (r) return r.size;
    }
    return undefined;
  }

  /** A blob's content, or undefined when it is not here. */
  get(device: number, hash: string): Uint8Array | undefined {
    try {
      return this.#get(device, hash);
    } catch (err) {
      // A sweep moved it out of its pack and took the pack away meanwhile: look again.
      if ((err as { code?: unknown }).code !== "ENOENT") throw err;
      return this.#get(device, hash);
    }
  }

  #get(device: number, hash: string): Uint8Array | undefined {
    const r = this.#stmt(
      "SELECT size, compression, frame FROM small WHERE device = ? AND hash = ?",
    ).get(device, hash) as { size: number; compression: string; frame: Uint8Array } | undefined;
    if (r) return r.compression === "zstd" ? this.#inflate(r.frame, r.size) : r.frame;
    const p = this.#stmt(
      `SELECT size, compression, pack, offset, length FROM packed WHERE ${PACKED_WHERE}`,
    ).get(device, hash) as
      | { size: number; compression: string; pack: string; offset: number; length: number }
      | undefined;
    if (!p) return undefined;
    const frame = this.#readFrame(device, p.pack, p.offset, p.length);
    return p.compression === "zstd" ? this.#inflate(frame, p.size) : frame;
  }

  #readFrame(device: number, pack: string, offset: number, length: number): Uint8Array {
    const fd = openSync(this.#packFile(device, pack), "r");
    try {
      const frame = new Uint8Array(length);
      let got = 0;
      while (got < length) {
        const n = readSync(fd, frame, got, length - got, offset + got);
        if (n === 0) throw new Error(`kept pack ${pack} is shorter than its index says`);
        got += n;
      }
      return frame;
    } finally {
      closeSync(fd);
    }
  }

  /** Removes a blob not touched since `olderThanMs`; true when removed. */
  remove(device: number, hash: string, olderThanMs: number): boolean {
    let n = 0;
    for (const [table, where] of [["small", SMALL_WHERE], ["packed", PACKED_WHERE]]) {
      n += Number(
        this.#stmt(`DELETE FROM ${table} WHERE ${where} AND touched <= ?3`).run(
          device,
          hash,
          olderThanMs,
        )
          .changes,
      );
    }
    return n > 0;
  }

  /** How much of the kept pack `pack` is still referenced, and of how much. */
  packUse(device: number, pack: string): PackUse {
    const r = this.#stmt(
      "SELECT count(*) AS blobs, coalesce(sum(length), 0) AS bytes FROM packed WHERE device = ? AND pack = ?",
    ).get(device, pack) as { blobs: number; bytes: number };
    const k = this.#stmt("SELECT bytes FROM kept_packs WHERE device = ? AND pack = ?")
      .get(device, pack) as { bytes: number } | undefined;
    return { blobs: r.blobs, bytes: r.bytes, ...(k ? { keptBytes: k.bytes } : {}) };
  }

  /**
   * In one transaction: moves the blobs still referenced in the kept pack `pack` into
   * `small` as frames when `unpack` (else retires it only while no row refers to it), then
   * calls `remove` (which takes the file away) before the commit. A pack that gained rows
   * meanwhile is not retired.
   */
  retire(
    device: number,
    pack: string,
    unpack: boolean,
    remove: () => void,
  ): { retired: boolean; unpacked: number } {
    return transaction(this.#db, () => {
      let unpacked = 0;
      if (unpack) {
        const rows = this.#stmt(
          "SELECT hash, size, compression, offset, length, touched FROM packed WHERE device = ? AND pack = ?",
        ).all(device, pack) as {
          hash: string;
          size: number;
          compression: string;
          offset: number;
          length: number;
          touched: number;
        }[];
        const put = this.#stmt(
          `INSERT INTO small (device, hash, size, compression, frame, touched)
           VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (device, hash) DO UPDATE SET touched = max(touched, excluded.touched)`,
        );
        for (const r of rows) {
          const frame = this.#readFrame(device, pack, r.offset, r.length);
          put.run(device, r.hash, r.size, r.compression, frame, r.touched);
        }
        this.#stmt("DELETE FROM packed WHERE device = ? AND pack = ?").run(device, pack);
        unpacked = rows.length;
      } else if (this.packUse(device, pack).blobs > 0) {
        return { retired: false, unpacked };
      }
      this.#stmt("DELETE FROM kept_packs WHERE device = ? AND pack = ?").run(device, pack);
      remove();
      return { retired: true, unpacked };
    });
  }

  /** Every blob here, a page at a time (the caller may remove rows meanwhile). */
  *list(): Iterable<{ device: number; hash: string; size: number }> {
    for (const table of ["small", "packed"]) {
      const page = this.#stmt(
        `SELECT rowid AS id, device, hash, size FROM ${table} WHERE rowid > ?
         ORDER BY rowid LIMIT 1000`,
      );
      let after = 0;
      for (;;) {
        const rows = page.all(after) as {
          id: number;
          device: number;
          hash: string;
          size: number;
        }[];
        if (rows.length === 0) break;
        for (const r of rows) yield { device: r.device, hash: r.hash, size: r.size };
        after = rows[rows.length - 1]!.id;
      }
    }
  }

  close(): void {
    this.#stmts.clear();
    this.#conn?.close();
    this.#conn = undefined;
  }
}
