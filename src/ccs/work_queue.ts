/**
 * The work database `Spool/Work/work.db`: the CCS work queues (ADD, UPDATE, DELETE, MOVE
 * items with their state), the file cache of what was uploaded, the saved source and cloud
 * listings, per-job peek state and the run rows that tie an enqueuer to its dequeuer.
 *
 * SQLite in WAL mode through `node:sqlite`, so the enqueuer and the dequeuer share it as two
 * processes; every change that must be all-or-nothing is one transaction.
 *
 * Item life: `planned` (peek decided it) -> `ready` (its pack file is complete in Spool/Work)
 * -> `sending` (a dequeuer claimed it) -> row deleted once the network confirmed it applied;
 * `failed` when the network rejected it. An item's row is written by the peek and not again
 * until it is sent or fails (its stored `state` stays `planned` until then): what packing
 * found goes into `packed` (a row per item), and whether a pack is ready or being sent into
 * `packs` (a row per pack), see decisions/0056.
 *
 * @module
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";
import { NetworkError } from "../core/errors.ts";
import { RowBatch } from "../core/row_batch.ts";
import { hasColumn, migrateOnce, openSqlite, transaction, userVersion } from "../core/sqlite.ts";
import type { RemoteFile } from "../network/client.ts";
import type { PackHeader } from "./pack_format.ts";

/** Kinds of work item. */
export type ItemKind = "ADD" | "UPDATE" | "DELETE" | "MOVE";
/** States of a work item. */
export type ItemState = "planned" | "ready" | "sending" | "failed";

/**
 * Upload stage of an item: everything of a lower stage is applied before a higher one starts
 * (a folder move before the file moves out of it, moves before the updates of moved files).
 */
export const Stage = { folderMove: 0, fileMove: 1, content: 2 } as const;

/** A work item as stored. */
export interface WorkItem {
  id: number;
  job: number;
  session: string;
  kind: ItemKind;
  stage: number;
  state: ItemState;
  path: string;
  newPath: string | null;
  folder: boolean;
  size: number;
  mtimeNs: string;
  mode: number;
  ino: string | null;
  dev: string | null;
  hash: string;
  baseVersion: number | null;
  baseHash: string | null;
  pack: string | null;
  packBytes: number;
  sig: string | null;
  claimedBy: number | null;
  error: string | null;
}

/** An item of a finished pack, for {@link WorkDb.markPackReady}. */
export interface PackedEntry {
  item: WorkItem;
  /** What it was packed as (an UPDATE may have become an ADD). */
  kind: ItemKind;
  /** Its entry's header, for an ADD or UPDATE. */
  header?: PackHeader;
  sig: string | null;
}

/** The fields of a new item. */
export type NewItem =
  & Pick<WorkItem, "kind" | "path">
  & Partial<Omit<WorkItem, "id" | "job" | "session" | "kind" | "path" | "state" | "stage">>
  & { stage?: number };

/** A file as the cloud peek lists it (the network's listing, less the store time). */
export type CloudFile = Omit<RemoteFile, "created">;

/** A file as the source walk found it. */
export interface LocalFile {
  path: string;
  size: number;
  mtimeNs: string;
  mode: number;
  ino: string;
  dev: string;
}

/** What the file cache knows of an uploaded file. */
export interface CachedFile {
  path: string;
  size: number;
  mtimeNs: string;
  ino: string | null;
  dev: string | null;
  hash: string;
  version: number | null;
}

/** Per-job peek state for skip-when-unchanged. */
export interface JobPeekState {
  /** Newest last-write time (ns, decimal) of any file or directory at the last full peek. */
  newestNs: string;
  /** Files and directories seen. */
  entries: number;
  /** Source, filters and link options the state was taken with. */
  fingerprint: string;
  /** Digest of the files' permission bits (ModeDigest in peek.ts). */
  modes: string;
  updated: string;
}

/** A run row: one enqueuer run of a job in a dispatcher session. */
export interface RunRow {
  session: string;
  job: number;
  pid: number;
  /** The enqueuer's parent (the dispatcher). */
  ppid: number;
  /** When the enqueuer process started (ms since the epoch). */
  proc_start: number;
  state: "running" | "done" | "failed";
  started: string;
  ended: string | null;
}

/**
 * The saved source listing, keyed by the walk's order ({@link walkKey}): a walk is compared
 * with it range by range and only what changed is written.
 */
const LOCAL_FILES = `CREATE TABLE local_files (
     job INTEGER NOT NULL, wkey TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,
     mtime_ns TEXT NOT NULL, mode INTEGER NOT NULL, ino TEXT NOT NULL, dev TEXT NOT NULL,
     PRIMARY KEY (job, wkey)
   ) WITHOUT ROWID`;

/**
 * The saved cloud listing, in the network's (path) order; `wkey` is the path's walk key
 * ({@link walkKey}), computed by SQLite, to find local files by it without computing it for
 * every row of every peek.
 */
const CLOUD_FILES = `CREATE TABLE cloud_files (
     job INTEGER NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns TEXT NOT NULL,
     mode INTEGER NOT NULL, hash TEXT NOT NULL, version INTEGER NOT NULL,
     wkey TEXT GENERATED ALWAYS AS (${walkKeySql("path")}) STORED,
     PRIMARY KEY (job, path)
   ) WITHOUT ROWID`;

/**
 * What packing found for each packed item (an UPDATE may have become an ADD), keyed by the
 * item's id: rows go in at the end of the table, where rewriting the items' own rows (each
 * growing by a hash and a pack name) cost most of a second for a first backup of 84k files.
 */
const PACKED = `CREATE TABLE IF NOT EXISTS packed (
     id INTEGER PRIMARY KEY, job INTEGER NOT NULL, pack TEXT NOT NULL, kind TEXT NOT NULL,
     size INTEGER NOT NULL, mtime_ns TEXT NOT NULL, mode INTEGER NOT NULL, hash TEXT NOT NULL,
     base_version INTEGER, base_hash TEXT, pack_bytes INTEGER NOT NULL, sig TEXT
   )`;

/** The head of every insert into {@link PACKED}, the columns in its order. */
const PACKED_INSERT = `INSERT OR REPLACE INTO packed (id, job, pack, kind, size, mtime_ns, mode,
  hash, base_version, base_hash, pack_bytes, sig)`;

/**
 * The packs whose items are ready (`claimed_by` null) or being sent by a dequeuer: a claim
 * writes one row a pack, not one a file. `first` is the first item put in it (the order
 * packs are handed out in), `stage` its items' stage.
 */
const PACKS = `CREATE TABLE IF NOT EXISTS packs (
     job INTEGER NOT NULL, pack TEXT NOT NULL, session TEXT NOT NULL, stage INTEGER NOT NULL,
     first INTEGER NOT NULL, claimed_by INTEGER,
     PRIMARY KEY (job, pack)
   )`;

const schema = [
  `CREATE TABLE items (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     job INTEGER NOT NULL,
     session TEXT NOT NULL,
     kind TEXT NOT NULL CHECK (kind IN ('ADD', 'UPDATE', 'DELETE', 'MOVE')),
     stage INTEGER NOT NULL,
     state TEXT NOT NULL CHECK (state IN ('planned', 'ready', 'sending', 'failed')),
     path TEXT NOT NULL,
     new_path TEXT,
     folder INTEGER NOT NULL DEFAULT 0,
     size INTEGER NOT NULL DEFAULT 0,
     mtime_ns TEXT NOT NULL DEFAULT '0',
     mode INTEGER NOT NULL DEFAULT 0,
     ino TEXT,
     dev TEXT,
     hash TEXT NOT NULL DEFAULT '',
     base_version INTEGER,
     base_hash TEXT,
     pack TEXT,
     pack_bytes INTEGER NOT NULL DEFAULT 0,
     sig TEXT,
     claimed_by INTEGER,
     error TEXT,
     created TEXT NOT NULL
   )`,
  `CREATE INDEX items_job_state ON items (job, state, stage, id)`,
  `CREATE TABLE file_cache (
     job INTEGER NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns TEXT NOT NULL,
     ino TEXT, dev TEXT, hash TEXT NOT NULL, version INTEGER,
     PRIMARY KEY (job, path)
   ) WITHOUT ROWID`,
  `CREATE INDEX file_cache_ino ON file_cache (job, dev, ino)`,
  CLOUD_FILES,
  LOCAL_FILES,
  `CREATE TABLE job_state (
     job INTEGER PRIMARY KEY, newest_ns TEXT NOT NULL, entries INTEGER NOT NULL,
     fingerprint TEXT NOT NULL, updated TEXT NOT NULL, cloud_saved INTEGER NOT NULL DEFAULT 0,
     modes TEXT NOT NULL DEFAULT ''
   )`,
  `CREATE TABLE runs (
     session TEXT NOT NULL, job INTEGER NOT NULL, pid INTEGER NOT NULL, ppid INTEGER NOT NULL,
     proc_start INTEGER NOT NULL, state TEXT NOT NULL, started TEXT NOT NULL, ended TEXT,
     PRIMARY KEY (session, job)
   )`,
];

/**
 * An item's state as it stands (see {@link ITEM_COLUMNS}). An item in a pack that `packs`
 * does not list (no write leaves one so) is `planned`: nothing hands it out, and the next
 * peek's `discardLeftovers` removes it.
 */
const ITEM_STATE = `CASE WHEN i.state = 'failed' THEN 'failed' WHEN p.id IS NULL THEN i.state
  WHEN k.pack IS NULL THEN 'planned' WHEN k.claimed_by IS NULL THEN 'ready' ELSE 'sending' END`;

/**
 * An item as it stands, in the column order {@link itemFromArray} reads, from `items i`
 * joined with `packed p` and `packs k` ({@link ITEM_FROM}): once packed, what packing found
 * (an UPDATE may have become an ADD), its pack and its claim. A row with no `packed` row
 * keeps its own state and values.
 */
const ITEM_COLUMNS = [
  "i.id",
  "i.job",
  "i.session",
  "coalesce(p.kind, i.kind)",
  "i.stage",
  ITEM_STATE,
  "i.path",
  "i.new_path",
  "i.folder",
  "coalesce(p.size, i.size)",
  "coalesce(p.mtime_ns, i.mtime_ns)",
  "coalesce(p.mode, i.mode)",
  "i.ino",
  "i.dev",
  "coalesce(p.hash, i.hash)",
  "CASE WHEN p.id IS NULL THEN i.base_version ELSE p.base_version END",
  "CASE WHEN p.id IS NULL THEN i.base_hash ELSE p.base_hash END",
  "coalesce(p.pack, i.pack)",
  "coalesce(p.pack_bytes, i.pack_bytes)",
  "CASE WHEN p.id IS NULL THEN i.sig ELSE p.sig END",
  "CASE WHEN p.id IS NULL THEN i.claimed_by ELSE k.claimed_by END",
  "i.error",
].join(", ");

/** The join {@link ITEM_COLUMNS} reads from. */
const ITEM_FROM = `items i LEFT JOIN packed p ON p.id = i.id
  LEFT JOIN packs k ON k.job = p.job AND k.pack = p.pack`;

/** An item from a row read as an array of {@link ITEM_COLUMNS}. */
function itemFromArray(r: unknown[]): WorkItem {
  return {
    id: r[0] as number,
    job: r[1] as number,
    session: r[2] as string,
    kind: r[3] as ItemKind,
    stage: r[4] as number,
    state: r[5] as ItemState,
    path: r[6] as string,
    newPath: r[7] as string | null,
    folder: r[8] === 1,
    size: r[9] as number,
    mtimeNs: r[10] as string,
    mode: r[11] as number,
    ino: r[12] as string | null,
    dev: r[13] as string | null,
    hash: r[14] as string,
    baseVersion: r[15] as number | null,
    baseHash: r[16] as string | null,
    pack: r[17] as string | null,
    packBytes: r[18] as number,
    sig: r[19] as string | null,
    claimedBy: r[20] as number | null,
    error: r[21] as string | null,
  };
}

/**
 * A path's key in the walk's order: the walk sorts component by component (a folder's
 * content right after it), which is byte order once `/` is a byte below every other a name
 * may hold. `/` becomes \x01; \x01 and \x02 in names are escaped (\x02\x01, \x02\x02), so
 * keys stay unique and in order (the comparison still checks the order it is given).
 */
export function walkKey(path: string): string {
  if (!path.includes("\x01") && !path.includes("\x02")) return path.replaceAll("/", "\x01");
  return path.replaceAll("\x02", "\x02\x02").replaceAll("\x01", "\x02\x01").replaceAll("/", "\x01");
}

/** {@link walkKey} in SQL, of the column or parameter `expr`. */
export function walkKeySql(expr: string): string {
  return `replace(replace(replace(${expr}, char(2), char(2, 2)), char(1), char(2, 1)), '/', char(1))`;
}

/** Upper bound for a `path >= prefix/ AND path < bound` range: everything under `prefix`. */
export function underBounds(prefix: string): [string, string] {
  return [`${prefix}/`, `${prefix}0`];
}

/** Whether the process `pid` is alive (best effort; pids can be reused). */
export function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === "EPERM";
  }
}

/** The work database. Open with {@link openWorkDb}; close when done. */
export class WorkDb {
  readonly db: DatabaseSync;
  readonly path: string;
  #stmts = new Map<string, StatementSync>();
  /** Statements whose rows are read as arrays (see `#arrays`). */
  #arrayStmts = new Map<string, StatementSync>();

  constructor(db: DatabaseSync, path: string) {
    this.db = db;
    this.path = path;
  }

  /** A cached prepared statement. */
  stmt(sql: string): StatementSync {
    let s = this.#stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.#stmts.set(sql, s);
    }
    return s;
  }

  /** Runs `fn` in one IMMEDIATE transaction (rolled back if it throws). */
  tx<T>(fn: () => T): T {
    return transaction(this.db, fn);
  }

  close(): void {
    this.#stmts.clear();
    this.#arrayStmts.clear();
    this.db.close();
  }

  // ---- items ----

  /** Adds items in state `planned` (call inside {@link tx} for many). Returns their ids. */
  addItems(job: number, session: string, items: NewItem[]): number[] {
    const s = this.stmt(
      `INSERT INTO items (job, session, kind, stage, state, path, new_path, folder, size,
         mtime_ns, mode, ino, dev, hash, base_version, base_hash, created)
       VALUES (?, ?, ?, ?, 'planned', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const now = new Date().toISOString();
    return items.map((i) =>
      Number(
        s.run(
          job,
          session,
          i.kind,
          i.stage ?? Stage.content,
          i.path,
          i.newPath ?? null,
          i.folder ? 1 : 0,
          i.size ?? 0,
          i.mtimeNs ?? "0",
          i.mode ?? 0,
          i.ino ?? null,
          i.dev ?? null,
          i.hash ?? "",
          i.baseVersion ?? null,
          i.baseHash ?? null,
          now,
        ).lastInsertRowid,
      )
    );
  }

  /** Items of `job` in `state`, in stage and creation order. */
  items(job: number, state?: ItemState, limit = -1): WorkItem[] {
    const q = state
      ? this.#arrays(
        `SELECT ${ITEM_COLUMNS} FROM ${ITEM_FROM} WHERE i.job = ? AND ${ITEM_STATE} = ?
         ORDER BY i.stage, i.id LIMIT ?`,
      ).all(job, state, limit)
      : this.#arrays(
        `SELECT ${ITEM_COLUMNS} FROM ${ITEM_FROM} WHERE i.job = ? ORDER BY i.stage, i.id LIMIT ?`,
      ).all(job, limit);
    return (q as unknown as unknown[][]).map(itemFromArray);
  }

  /** Up to `limit` planned items of `job`'s `stage` with ids above `after`, in id order. */
  planned(job: number, stage: number, after: number, limit: number): WorkItem[] {
    // A first backup reads every item here once.
    const q = this.#arrays(
      `SELECT ${ITEM_COLUMNS} FROM ${ITEM_FROM}
       WHERE i.job = ? AND i.state = 'planned' AND i.stage = ? AND i.id > ? AND p.id IS NULL
       ORDER BY i.id LIMIT ?`,
    );
    return (q.all(job, stage, after, limit) as unknown as unknown[][]).map(itemFromArray);
  }

  /** One item, or undefined. */
  item(id: number): WorkItem | undefined {
    const r = this.#arrays(`SELECT ${ITEM_COLUMNS} FROM ${ITEM_FROM} WHERE i.id = ?`).get(id);
    return r ? itemFromArray(r as unknown as unknown[]) : undefined;
  }

  /** Counts of `job`'s items by state. */
  counts(job: number): Record<ItemState, number> {
    const out: Record<ItemState, number> = { planned: 0, ready: 0, sending: 0, failed: 0 };
    const rows = this.stmt(
      `SELECT ${ITEM_STATE} AS state, count(*) AS n FROM ${ITEM_FROM} WHERE i.job = ?
       GROUP BY 1`,
    ).all(job) as unknown as { state: ItemState; n: number }[];
    for (const r of rows) out[r.state] = r.n;
    return out;
  }

  /** Jobs that have items waiting to be sent. */
  jobsWithWork(): number[] {
    return (this.stmt(
      "SELECT DISTINCT job FROM items WHERE state = 'planned' ORDER BY job",
    ).all() as unknown as { job: number }[]).map((r) => r.job);
  }

  /** Marks a planned item ready: its pack file is complete. */
  markReady(id: number, pack: string, packBytes: number, sig: string | null): void {
    this.#inTx(() => {
      this.stmt(
        `${PACKED_INSERT}
         SELECT id, job, ?, kind, size, mtime_ns, mode, hash, base_version, base_hash, ?, ?
         FROM items WHERE id = ?`,
      ).run(pack, packBytes, sig, id);
      this.#packReady(id, pack);
    });
  }

  /**
   * Marks a packed ADD or UPDATE ready and records what was packed (an UPDATE may have
   * become an ADD).
   */
  markPacked(
    id: number,
    kind: ItemKind,
    h: PackHeader,
    pack: string,
    packBytes: number,
    sig: string | null,
  ): void {
    this.#inTx(() => {
      this.stmt(
        `${PACKED_INSERT}
         SELECT id, job, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM items WHERE id = ?`,
      ).run(
        pack,
        kind,
        h.size,
        h.mtimeNs,
        h.mode,
        h.hash,
        h.base ?? null,
        h.baseHash ?? null,
        packBytes,
        sig,
        id,
      );
      this.#packReady(id, pack);
    });
  }

  /**
   * Marks the items of a finished shared pack ready, in one transaction: one `packs` row
   * for the pack and the `packed` rows 64 to a statement (a statement or two per item took
   * a first backup's enqueuer about a third of a second). An entry with a header records
   * what was packed (an UPDATE may have become an ADD); one without (a move, a delete)
   * records the item as planned. `packBytes` goes to the first entry, as with
   * {@link markPacked}.
   */
  markPackReady(pack: string, packBytes: number, entries: readonly PackedEntry[]): void {
    if (entries.length === 0) return;
    this.#inTx(() => {
      const put = new RowBatch((sql) => this.stmt(sql), PACKED_INSERT, 12);
      for (const [i, { item, kind, header: h, sig }] of entries.entries()) {
        // What was packed, else (a move, a delete) the item as planned.
        const what: SQLInputValue[] = h
          ? [kind, h.size, h.mtimeNs, h.mode, h.hash, h.base ?? null, h.baseHash ?? null]
          : [
            item.kind,
            item.size,
            item.mtimeNs,
            item.mode,
            item.hash,
            item.baseVersion,
            item.baseHash,
          ];
        put.add(item.id, item.job, pack, ...what, i === 0 ? packBytes : 0, sig);
      }
      put.flush();
      this.#packReady(entries[0]!.item.id, pack);
    });
  }

  /** The pack of item `id` is ready, if it was not already (inside a transaction). */
  #packReady(id: number, pack: string): void {
    this.stmt(
      `INSERT OR IGNORE INTO packs (job, pack, session, stage, first)
       SELECT job, ?, session, stage, id FROM items WHERE id = ?`,
    ).run(pack, id);
  }

  /** Runs `fn` in the caller's transaction, or in one of its own. */
  #inTx(fn: () => void): void {
    if (this.db.isTransaction) fn();
    else this.tx(fn);
  }

  /** A statement whose rows are read as arrays (cached apart from {@link stmt}'s). */
  #arrays(sql: string): StatementSync {
    let s = this.#arrayStmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      s.setReturnArrays(true);
      this.#arrayStmts.set(sql, s);
    }
    return s;
  }

  /** Forgets pack `pack` of `job` once none of its items is left. */
  #dropEmptyPack(job: number, pack: string): void {
    this.stmt(
      `DELETE FROM packs WHERE job = ?1 AND pack = ?2
         AND NOT EXISTS (SELECT 1 FROM packed WHERE job = ?1 AND pack = ?2)`,
    ).run(job, pack);
  }

  /** Updates fields of a planned item before it is packed (e.g. an ADD that became UPDATE). */
  replan(id: number, fields: Partial<Pick<WorkItem, "kind" | "baseVersion" | "baseHash">>): void {
    const cur = this.item(id);
    if (!cur) return;
    this.stmt("UPDATE items SET kind = ?, base_version = ?, base_hash = ? WHERE id = ?").run(
      fields.kind ?? cur.kind,
      fields.baseVersion === undefined ? cur.baseVersion : fields.baseVersion,
      fields.baseHash === undefined ? cur.baseHash : fields.baseHash,
      id,
    );
  }

  /** Removes items (their pack files are the caller's). */
  removeItems(ids: number[]): void {
    const s = this.stmt("DELETE FROM items WHERE id = ?");
    const p = this.stmt("DELETE FROM packed WHERE id = ? RETURNING job, pack");
    this.#inTx(() => {
      for (const id of ids) {
        s.run(id);
        const gone = p.get(id) as { job: number; pack: string } | undefined;
        if (gone) this.#dropEmptyPack(gone.job, gone.pack);
      }
    });
  }

  /**
   * Removes the items of `pack` that `pid` claimed, `count` of them, in a few statements
   * (one per item cost a statement per file of a first backup), in the caller's transaction
   * or one of its own; throws, before that commits, when another number of items matched.
   */
  removeClaimedPack(job: number, pack: string, pid: number, count: number): void {
    this.#inTx(() => {
      const k = this.stmt("SELECT claimed_by FROM packs WHERE job = ? AND pack = ?").get(
        job,
        pack,
      ) as { claimed_by: number | null } | undefined;
      let removed = 0;
      if (k?.claimed_by === pid) {
        removed = Number(
          this.stmt(
            `DELETE FROM items WHERE id IN (SELECT id FROM packed WHERE job = ?1 AND pack = ?2)
               AND state != 'failed'`,
          ).run(job, pack).changes,
        );
        this.stmt("DELETE FROM packed WHERE job = ? AND pack = ?").run(job, pack);
        this.stmt("DELETE FROM packs WHERE job = ? AND pack = ?").run(job, pack);
      }
      if (removed !== count) {
        throw new Error(`pack ${pack}: ${removed} claimed item(s) removed, not ${count}`);
      }
    });
  }

  /**
   * How many packs of `job` are ready and how many are being sent (what a dequeuer waiting
   * for the last of them asks; {@link counts} reads every item).
   */
  packCounts(job: number): { ready: number; sending: number } {
    const r = this.stmt(
      `SELECT count(*) FILTER (WHERE claimed_by IS NULL) AS ready,
         count(*) FILTER (WHERE claimed_by IS NOT NULL) AS sending FROM packs WHERE job = ?`,
    ).get(job) as { ready: number; sending: number };
    return { ready: r.ready, sending: r.sending };
  }

  /**
   * Whether an item of `job` is ready (a read, no write lock): a dequeuer polling for work
   * asks this before it claims.
   */
  hasReady(job: number): boolean {
    return this.stmt("SELECT 1 AS x FROM packs WHERE job = ? AND claimed_by IS NULL LIMIT 1")
      .get(job) !== undefined;
  }

  /** Marks an item failed with a reason. */
  fail(id: number, error: string): void {
    this.#inTx(() => {
      this.stmt("UPDATE items SET state = 'failed', claimed_by = NULL, error = ? WHERE id = ?")
        .run(error, id);
      const gone = this.stmt("DELETE FROM packed WHERE id = ? RETURNING job, pack").get(id) as
        | { job: number; pack: string }
        | undefined;
      if (gone) this.#dropEmptyPack(gone.job, gone.pack);
    });
  }

  /**
   * Claims the ready items of up to `max` packs of `job` for the dequeuer `pid` (every item
   * of a pack, so a pack is sent once; no further pack once `maxItems` are claimed), all of
   * the lowest stage that still has unfinished items (so a folder move is applied before
   * what depends on it), oldest pack first. Returns nothing while a lower stage is still
   * being planned, packed or sent.
   */
  claim(job: number, pid: number, max: number, maxItems = 8_000): WorkItem[] {
    return this.tx(() => {
      const low = this.stmt(
        "SELECT min(stage) AS s FROM items WHERE job = ? AND state = 'planned'",
      ).get(job) as { s: number | null };
      if (low.s === null) return [];
      const packs = this.stmt(
        `SELECT pack FROM packs WHERE job = ? AND stage = ? AND claimed_by IS NULL
         ORDER BY first LIMIT ?`,
      ).all(job, low.s, max) as { pack: string }[];
      const take = this.stmt("UPDATE packs SET claimed_by = ? WHERE job = ? AND pack = ?");
      // A pack's items in one statement, read as arrays: a statement and an object spread
      // per item cost 2.6 times as much.
      const pick = this.#arrays(
        `SELECT ${ITEM_COLUMNS} FROM packed p CROSS JOIN items i ON i.id = p.id
           LEFT JOIN packs k ON k.job = p.job AND k.pack = p.pack
         WHERE p.job = ? AND p.pack = ? AND i.state != 'failed' ORDER BY p.id`,
      );
      const out: WorkItem[] = [];
      for (const { pack } of packs) {
        // Bounded memory: whole packs only, and no more once the items fill a few packs.
        if (out.length >= maxItems) break;
        take.run(pid, job, pack);
        const rows = pick.all(job, pack) as unknown as unknown[][];
        if (rows.length === 0) {
          this.stmt("DELETE FROM packs WHERE job = ? AND pack = ?").run(job, pack);
        }
        for (const r of rows) out.push(itemFromArray(r));
      }
      return out;
    });
  }

  /** Gives claimed items back (a transient failure): they are sent again later. */
  unclaim(ids: number[]): void {
    const packOf = this.stmt("SELECT job, pack FROM packed WHERE id = ?");
    const free = this.stmt("UPDATE packs SET claimed_by = NULL WHERE job = ? AND pack = ?");
    this.tx(() => {
      const done = new Set<string>();
      for (const id of ids) {
        const r = packOf.get(id) as { job: number; pack: string } | undefined;
        if (!r || done.has(r.pack)) continue;
        done.add(r.pack);
        free.run(r.job, r.pack);
      }
    });
  }

  /**
   * Before a new peek of `job`: removes every item no live dequeuer is sending (leftovers of
   * an interrupted run; the new peek plans them again from the cloud's real state) and
   * returns the pack/signature files to delete and the number of items still being sent.
   * Discarding forgets the skip state: the changes those items carried need a full peek.
   */
  discardLeftovers(job: number): { files: string[]; sending: number; removed: number } {
    return this.tx(() => {
      const files: string[] = [];
      let sending = 0;
      let removed = 0;
      const del = this.stmt("DELETE FROM items WHERE id = ?");
      const delPacked = this.stmt("DELETE FROM packed WHERE id = ?");
      for (const r of this.items(job)) {
        if (r.state === "sending" && r.claimedBy !== null && pidAlive(r.claimedBy)) {
          sending++;
          continue;
        }
        if (r.pack) files.push(r.pack);
        if (r.sig) files.push(r.sig);
        del.run(r.id);
        delPacked.run(r.id);
        removed++;
      }
      // Packs none of whose items is left (a dequeuer died between its last two writes).
      this.stmt(
        `DELETE FROM packs WHERE job = ?1
           AND NOT EXISTS (SELECT 1 FROM packed p WHERE p.job = ?1 AND p.pack = packs.pack)`,
      ).run(job);
      if (removed > 0) this.invalidatePeekState(job);
      return { files, sending, removed };
    });
  }

  // ---- file cache ----

  /** The cache entry of `path`. */
  cached(job: number, path: string): CachedFile | undefined {
    const r = this.stmt("SELECT * FROM file_cache WHERE job = ? AND path = ?").get(job, path);
    return r ? fromCache(r) : undefined;
  }

  /** A cache entry for the same file (device + inode) with this size and mtime, any path. */
  cachedByInode(
    job: number,
    dev: string,
    ino: string,
    size: number,
    mtimeNs: string,
  ): CachedFile | undefined {
    const r = this.stmt(
      // Without table statistics SQLite picks the primary key (job, path) here and reads every
      // row of the job for each lookup (7 ms each for 84k files): name the inode index.
      `SELECT * FROM file_cache INDEXED BY file_cache_ino
       WHERE job = ? AND dev = ? AND ino = ? AND size = ? AND mtime_ns = ?`,
    ).get(job, dev, ino, size, mtimeNs);
    return r ? fromCache(r) : undefined;
  }

  /**
   * What the file cache knows of `files` with their size and mtime: by path, else by device
   * + inode (a renamed file). Two joins over a temporary table of the files.
   */
  cachedHashes(
    job: number,
    files: {
      path: string;
      size: number;
      mtimeNs: string;
      ino?: string | null;
      dev?: string | null;
    }[],
  ): Map<string, { hash: string; inode: boolean }> {
    const out = new Map<string, { hash: string; inode: boolean }>();
    if (files.length === 0) return out;
    this.db.exec(
      `CREATE TEMP TABLE IF NOT EXISTS look_ahead (path TEXT PRIMARY KEY, size INTEGER,
         mtime_ns TEXT, ino TEXT, dev TEXT) WITHOUT ROWID`,
    );
    this.tx(() => {
      this.db.exec("DELETE FROM temp.look_ahead");
      const ins = this.stmt("INSERT OR IGNORE INTO temp.look_ahead VALUES (?, ?, ?, ?, ?)");
      for (const f of files) ins.run(f.path, f.size, f.mtimeNs, f.ino ?? null, f.dev ?? null);
      const byPath = this.stmt(
        `SELECT a.path, f.hash FROM temp.look_ahead a CROSS JOIN file_cache f
         WHERE f.job = ? AND f.path = a.path AND f.size = a.size AND f.mtime_ns = a.mtime_ns`,
      ).all(job) as { path: string; hash: string }[];
      for (const r of byPath) out.set(r.path, { hash: r.hash, inode: false });
      const byInode = this.stmt(
        `SELECT a.path, f.hash FROM temp.look_ahead a CROSS JOIN file_cache f
           INDEXED BY file_cache_ino
         WHERE f.job = ? AND f.dev = a.dev AND f.ino = a.ino AND f.size = a.size
           AND f.mtime_ns = a.mtime_ns`,
      ).all(job) as { path: string; hash: string }[];
      for (const r of byInode) if (!out.has(r.path)) out.set(r.path, { hash: r.hash, inode: true });
      this.db.exec("DELETE FROM temp.look_ahead");
    });
    return out;
  }

  /** Records what was uploaded for each of `files`, in their order. */
  putCached(job: number, files: CachedFile[]): void {
    const put = new RowBatch(
      (sql) => this.stmt(sql),
      "INSERT OR REPLACE INTO file_cache (job, path, size, mtime_ns, ino, dev, hash, version)",
      8,
    );
    for (const f of files) put.add(job, f.path, f.size, f.mtimeNs, f.ino, f.dev, f.hash, f.version);
    put.flush();
  }

  /** Renames cache entries: one file, or a folder and everything under it. */
  moveCached(job: number, from: string, to: string, folder: boolean): void {
    if (!folder) {
      this.stmt("DELETE FROM file_cache WHERE job = ? AND path = ?").run(job, to);
      this.stmt("UPDATE file_cache SET path = ? WHERE job = ? AND path = ?").run(to, job, from);
      return;
    }
    const [lo, hi] = underBounds(from);
    this.stmt(
      `INSERT OR REPLACE INTO file_cache (job, path, size, mtime_ns, ino, dev, hash, version)
       SELECT job, ? || substr(path, length(?) + 1), size, mtime_ns, ino, dev, hash, version
       FROM file_cache WHERE job = ? AND path >= ? AND path < ?`,
    ).run(to, from, job, lo, hi); // length() counts characters, as substr (JS: UTF-16 units)
    this.stmt("DELETE FROM file_cache WHERE job = ? AND path >= ? AND path < ?").run(job, lo, hi);
  }

  /** Forgets `path` (deleted from the cloud). */
  dropCached(job: number, path: string): void {
    this.stmt("DELETE FROM file_cache WHERE job = ? AND path = ?").run(job, path);
  }

  // ---- listings ----

  /**
   * Replaces the saved cloud listing of `job` with the files `batches` yields, one
   * transaction per batch (the listing is never whole in memory). Rows that did not change
   * are not written: a batch updates what differs and deletes the saved rows in its path
   * range it does not list, which relies on the network's listing being sorted by path in
   * SQLite's (byte) order, as this table is. Rewriting every row cost 1.6 s for 84k files.
   */
  async saveCloud(job: number, batches: AsyncIterable<CloudFile[]>): Promise<number> {
    this.stmt("UPDATE job_state SET cloud_saved = 0, cloud_tag = NULL WHERE job = ?").run(job);
    const put = this.stmt(
      `INSERT OR REPLACE INTO cloud_files (job, path, size, mtime_ns, mode, hash, version)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    const saved = this.stmt(
      `SELECT path, size, mtime_ns AS mtimeNs, mode, hash, version FROM cloud_files
       WHERE job = ? AND path > ? AND path <= ?`,
    );
    const drop = this.stmt("DELETE FROM cloud_files WHERE job = ? AND path = ?");
    let after = ""; // below every path
    let n = 0;
    for await (const b of regroup(batches, 4096)) {
      const last = b[b.length - 1]!.path;
      let prev = after;
      for (const f of b) {
        if (!byteOrderLess(prev, f.path)) {
          throw new NetworkError(
            `the network's listing is not sorted by path (${f.path} after ${prev})`,
            { hint: "update cncopd: this enqueuer needs listings in path order" },
          );
        }
        prev = f.path;
      }
      this.tx(() => {
        const have = new Map<string, CloudFile>();
        for (const r of saved.all(job, after, last) as unknown as CloudFile[]) have.set(r.path, r);
        for (const f of b) {
          const h = have.get(f.path);
          have.delete(f.path);
          if (
            h && h.size === f.size && h.mtimeNs === f.mtimeNs && h.mode === f.mode &&
            h.hash === f.hash && h.version === f.version
          ) continue;
          put.run(job, f.path, f.size, f.mtimeNs, f.mode, f.hash, f.version);
        }
        for (const p of have.keys()) drop.run(job, p);
      });
      after = last;
      n += b.length;
    }
    this.tx(() => this.stmt("DELETE FROM cloud_files WHERE job = ? AND path > ?").run(job, after));
    this.stmt(
      `INSERT INTO job_state (job, newest_ns, entries, fingerprint, updated, cloud_saved)
       VALUES (?, '', 0, '', ?, 1)
       ON CONFLICT (job) DO UPDATE SET cloud_saved = 1`,
    ).run(job, new Date().toISOString());
    return n;
  }

  /**
   * The network's tag of the saved cloud listing of `job`: the listing is the network's
   * state of that tag (after the dequeuer folded its applied packs into it); undefined when
   * unknown, and the next peek reads the whole listing.
   */
  cloudTag(job: number): string | undefined {
    const r = this.stmt("SELECT cloud_tag FROM job_state WHERE job = ? AND cloud_saved = 1")
      .get(job) as { cloud_tag: string | null } | undefined;
    return r?.cloud_tag ?? undefined;
  }

  /** Records the tag of the saved cloud listing of `job` (null: unknown). */
  setCloudTag(job: number, tag: string | null): void {
    this.stmt("UPDATE job_state SET cloud_tag = ? WHERE job = ?").run(tag, job);
  }

  /** Whether a complete cloud listing of `job` was saved (for `--skippeekcloud`). */
  hasSavedCloud(job: number): boolean {
    const r = this.stmt("SELECT cloud_saved FROM job_state WHERE job = ?").get(job) as
      | { cloud_saved: number }
      | undefined;
    return r?.cloud_saved === 1;
  }

  /** Adds source files (call inside {@link tx}). */
  putLocal(job: number, files: LocalFile[]): void {
    const ins = this.stmt(
      `INSERT OR REPLACE INTO local_files (job, wkey, path, size, mtime_ns, mode, ino, dev)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    for (const f of files) {
      ins.run(job, walkKey(f.path), f.path, f.size, f.mtimeNs, f.mode, f.ino, f.dev);
    }
  }

  /** The saved source file of `job` at `path`. */
  localFile(job: number, path: string): LocalFile | undefined {
    return this.stmt(
      `SELECT path, size, mtime_ns AS mtimeNs, mode, ino, dev FROM local_files
       WHERE job = ? AND wkey = ?`,
    ).get(job, walkKey(path)) as LocalFile | undefined;
  }

  /** Number of saved cloud files of `job` (under `prefix` when given). */
  cloudCount(job: number, prefix?: string): number {
    if (prefix === undefined) {
      return (this.stmt("SELECT count(*) AS n FROM cloud_files WHERE job = ?").get(job) as {
        n: number;
      }).n;
    }
    const [lo, hi] = underBounds(prefix);
    return (this.stmt(
      "SELECT count(*) AS n FROM cloud_files WHERE job = ? AND path >= ? AND path < ?",
    ).get(job, lo, hi) as { n: number }).n;
  }

  /** Whether `job` has a saved source listing (one row is enough to know). */
  hasLocal(job: number): boolean {
    return this.stmt("SELECT 1 AS x FROM local_files WHERE job = ? LIMIT 1").get(job) !== undefined;
  }

  /** Number of saved source files of `job`. */
  localCount(job: number): number {
    return (this.stmt("SELECT count(*) AS n FROM local_files WHERE job = ?").get(job) as {
      n: number;
    }).n;
  }

  // ---- per-job state ----

  /** The skip-when-unchanged state of `job`, if a clean full peek recorded one. */
  peekState(job: number): JobPeekState | undefined {
    const r = this.stmt("SELECT * FROM job_state WHERE job = ?").get(job) as
      | { newest_ns: string; entries: number; fingerprint: string; modes: string; updated: string }
      | undefined;
    if (!r || r.newest_ns === "") return undefined;
    return {
      newestNs: r.newest_ns,
      entries: r.entries,
      fingerprint: r.fingerprint,
      modes: r.modes,
      updated: r.updated,
    };
  }

  /** Records the state of a clean full peek. */
  setPeekState(
    job: number,
    s: Omit<JobPeekState, "updated" | "modes"> & { modes?: string },
  ): void {
    this.stmt(
      `INSERT INTO job_state (job, newest_ns, entries, fingerprint, modes, updated)
       VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (job) DO UPDATE SET newest_ns = excluded.newest_ns, entries = excluded.entries,
         fingerprint = excluded.fingerprint, modes = excluded.modes, updated = excluded.updated`,
    ).run(job, s.newestNs, s.entries, s.fingerprint, s.modes ?? "", new Date().toISOString());
  }

  /** Forgets the skip state: the next run of `job` does a full peek. */
  invalidatePeekState(job: number): void {
    this.stmt("UPDATE job_state SET newest_ns = '' WHERE job = ?").run(job);
  }

  // ---- runs ----

  /** Records (or restarts) the enqueuer run of `job` in `session`. */
  startRun(session: string, job: number): void {
    this.stmt(
      `INSERT OR REPLACE INTO runs (session, job, pid, ppid, proc_start, state, started, ended)
       VALUES (?, ?, ?, ?, ?, 'running', ?, NULL)`,
    ).run(
      session,
      job,
      process.pid,
      process.ppid,
      processStart(),
      new Date().toISOString(),
    );
  }

  /**
   * Marks the enqueuer run of `job` in `session` as one that peeks in full (something may
   * have changed): the dispatcher starts the dequeuer then, so its start overlaps the peek.
   */
  markPeeking(session: string, job: number): void {
    this.stmt("UPDATE runs SET peeking = 1 WHERE session = ? AND job = ?").run(session, job);
  }

  /** Ends the enqueuer run of `job` in `session`. */
  endRun(session: string, job: number, ok: boolean): void {
    // Not peeking any more: a re-run's dispatcher must not start a dequeuer on the old mark.
    this.stmt(
      "UPDATE runs SET state = ?, ended = ?, peeking = 0 WHERE session = ? AND job = ?",
    ).run(
      ok ? "done" : "failed",
      new Date().toISOString(),
      session,
      job,
    );
  }

  /** The enqueuer run of `job` in `session`, if one started. */
  run(session: string, job: number): RunRow | undefined {
    return this.stmt("SELECT * FROM runs WHERE session = ? AND job = ?").get(session, job) as
      | RunRow
      | undefined;
  }

  /** Removes run rows older than `days`. */
  pruneRuns(days = 7): void {
    const cut = new Date(Date.now() - days * 86400_000).toISOString();
    this.stmt("DELETE FROM runs WHERE started < ?").run(cut);
  }
}

/** When this process started, ms since the epoch. */
export function processStart(): number {
  return Math.round(Date.now() - process.uptime() * 1000);
}

function fromCache(r: unknown): CachedFile {
  const x = r as {
    path: string;
    size: number;
    mtime_ns: string;
    ino: string | null;
    dev: string | null;
    hash: string;
    version: number | null;
  };
  return {
    path: x.path,
    size: x.size,
    mtimeNs: x.mtime_ns,
    ino: x.ino,
    dev: x.dev,
    hash: x.hash,
    version: x.version,
  };
}

/**
 * `batches` joined into arrays of at least `min` items (the last may be shorter; none is
 * empty): the network's chunks hold a few hundred files, and a transaction each made the
 * first save of a large listing commit hundreds of times.
 */
async function* regroup<T>(batches: AsyncIterable<T[]>, min: number): AsyncIterable<T[]> {
  let buf: T[] = [];
  for await (const b of batches) {
    for (const x of b) buf.push(x);
    if (buf.length >= min) {
      yield buf;
      buf = [];
    }
  }
  if (buf.length) yield buf;
}

/**
 * `a < b` in UTF-8 byte order (SQLite's order for TEXT): UTF-16 order except that a surrogate
 * (a code point above U+FFFF) sorts after U+E000..U+FFFF.
 */
export function byteOrderLess(a: string, b: string): boolean {
  // Below U+D800, UTF-16 order is UTF-8 byte order: the engine's comparison decides.
  if (!WIDE.test(a) && !WIDE.test(b)) return a < b;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800) x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
    if (y >= 0xd800) y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    return x < y;
  }
  return a.length < b.length;
}

/** Drops and creates `table` again when it lacks the `wkey` column (then runs `after`). */
function remake(db: DatabaseSync, table: string, create: string, after?: string): void {
  migrateOnce(db, () => hasColumn(db, table, "wkey"), () => {
    db.exec(`DROP TABLE ${table}`);
    db.exec(create);
    if (after) db.exec(after);
  });
}

/** Adds a column a work.db of an earlier version lacks (a no-op when it has it). */
function addColumn(db: DatabaseSync, table: string, column: string, type: string): void {
  migrateOnce(
    db,
    () => hasColumn(db, table, column),
    () => db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`),
  );
}

/** A UTF-16 code unit whose order may differ from its UTF-8 bytes' (surrogates, U+E000+). */
const WIDE = /[\ud800-\uffff]/;

/**
 * Opens (creating if needed) the work database at `path`.
 *
 * @example
 * ```ts
 * const work = openWorkDb(join(paths.work, "work.db"));
 * ```
 */
export function openWorkDb(path: string): WorkDb {
  mkdirSync(dirname(path), { recursive: true });
  // A cache and a queue rebuilt from the cloud's state after a crash: NORMAL is enough.
  const db = openSqlite(path, { busyTimeoutMs: 60_000, synchronous: "NORMAL" });
  migrateOnce(db, () => userVersion(db) >= 1, () => {
    for (const sql of schema) db.exec(sql);
    db.exec("PRAGMA user_version = 1");
  });
  // Item rows no longer carry their pack (schema 2): an index of schema 1 only costs writes.
  db.exec("DROP INDEX IF EXISTS items_pack");
  db.exec(PACKED);
  db.exec("CREATE INDEX IF NOT EXISTS packed_pack ON packed (job, pack)");
  db.exec(PACKS);
  // What claim() and hasReady() look for: without it every claim sorts all of a job's packs
  // (a first backup of large files, a pack each, piling up ahead of a slow network).
  db.exec(
    "CREATE INDEX IF NOT EXISTS packs_ready ON packs (job, stage, first) WHERE claimed_by IS NULL",
  );
  // Items a dequeuer of an earlier version would have sent: ready (again) in the new tables.
  migrateOnce(db, () => userVersion(db) >= 2, () => {
    const legacy = "state IN ('ready', 'sending') AND pack IS NOT NULL";
    db.exec(
      `${PACKED_INSERT}
       SELECT id, job, pack, kind, size, mtime_ns, mode, hash, base_version, base_hash,
         pack_bytes, sig FROM items WHERE ${legacy}`,
    );
    db.exec(
      `INSERT OR IGNORE INTO packs (job, pack, session, stage, first)
       SELECT job, pack, min(session), min(stage), min(id) FROM items WHERE ${legacy}
       GROUP BY job, pack`,
    );
    db.exec(
      "UPDATE items SET state = 'planned', claimed_by = NULL WHERE state IN ('ready', 'sending')",
    );
    db.exec("PRAGMA user_version = 2");
  });
  addColumn(db, "job_state", "modes", "TEXT NOT NULL DEFAULT ''");
  addColumn(db, "job_state", "cloud_tag", "TEXT");
  addColumn(db, "runs", "peeking", "INTEGER NOT NULL DEFAULT 0");
  // Listings of a work.db from before walk keys: made again (the next peek walks and lists
  // in full; the skip state holds until something changed). After the columns: the update
  // names cloud_tag.
  remake(db, "local_files", LOCAL_FILES);
  remake(db, "cloud_files", CLOUD_FILES, "UPDATE job_state SET cloud_saved = 0, cloud_tag = NULL");
  return new WorkDb(db, path);
}
