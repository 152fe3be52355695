/**
 * Folds the dequeuer's applied packs into the saved cloud listing (`cloud_files`), so the
 * next peek can ask the network whether anything else changed (a conditional listing)
 * instead of reading every file of the job again.
 *
 * The saved listing carries the network's tag of the state it shows. A pack's result says
 * which tag it was applied on and which it made: only when the first is the saved one does
 * the fold apply the pack's entries, exactly as the network did (see src/network/apply.ts),
 * and take the new tag. Anything unexpected (another tag, an entry without its item, a count
 * that differs from the network's) forgets the tag instead, and the next peek reads the
 * whole listing: a fold can cost a listing, never a missed change.
 *
 * @module
 */
import { RowBatch } from "../core/row_batch.ts";
import type { PackResult } from "../network/client.ts";
import { underBounds, type WorkDb, type WorkItem } from "./work_queue.ts";

/** An applied pack: the network's result and the items it carried. */
export interface AppliedPack {
  result?: PackResult;
  items: WorkItem[];
}

/**
 * Folds `packs` (inside the caller's transaction) in the order the network applied them,
 * as far as their tags chain from the saved one. Returns how many were folded; when some
 * could not be, the saved tag is forgotten.
 */
export function foldApplied(work: WorkDb, job: number, packs: AppliedPack[]): number {
  const left = foldChained(work, job, packs);
  if (left.length > 0) work.setCloudTag(job, null);
  return packs.length - left.length;
}

/**
 * Folds what of `packs` chains from the saved tag (inside the caller's transaction) and
 * returns the rest, the tag left as it is: a pack applied before them may still come (the
 * dequeuer records each pack as its answer arrives, and answers on several connections may
 * arrive out of order). A pack that chains but does not fit forgets the tag; nothing is
 * left to chain then, and it is returned with the rest.
 */
export function foldChained<P extends AppliedPack>(work: WorkDb, job: number, packs: P[]): P[] {
  const left = [...packs];
  for (;;) {
    const tag = work.cloudTag(job);
    const i = tag === undefined ? -1 : left.findIndex((p) => p.result?.listing?.before === tag);
    if (i < 0) return left;
    const [p] = left.splice(i, 1);
    // A pack folds whole or not at all (the listing stays as it was, its tag forgotten); an
    // error in the fold never undoes the caller's record of what the network applied.
    work.db.exec("SAVEPOINT fold");
    let ok = false;
    try {
      ok = foldOne(work, job, p!);
    } catch {
      ok = false;
    }
    if (!ok) work.db.exec("ROLLBACK TO fold");
    work.db.exec("RELEASE fold");
    if (!ok) {
      work.setCloudTag(job, null);
      return [p!, ...left];
    }
    work.setCloudTag(job, p!.result!.listing!.after);
  }
}

/** Applies one pack's entries to cloud_files; false when they do not fit what is saved. */
function foldOne(work: WorkDb, job: number, p: AppliedPack): boolean {
  const items = new Map(p.items.map((i) => [`${i.kind.toLowerCase()}:${i.path}`, i]));
  // Many rows to a statement; written before a move or delete, which must see them. On
  // false the caller rolls back what was written, and the rest is never written.
  const put = new RowBatch(
    (sql) => work.stmt(sql),
    "INSERT OR REPLACE INTO cloud_files (job, path, size, mtime_ns, mode, hash, version)",
    7,
  );
  for (const e of p.result!.entries ?? []) {
    const item = items.get(`${e.kind}:${e.path}`);
    if (!item) return false;
    if (e.kind === "add" || e.kind === "update") {
      if (e.version === undefined) return false;
      put.add(job, item.path, item.size, item.mtimeNs, item.mode, item.hash, e.version);
      continue;
    }
    put.flush();
    switch (e.kind) {
      case "move":
        if (!e.newPath) return false;
        if (item.folder ? !foldFolderMove(work, job, e) : !foldFileMove(work, job, e)) {
          return false;
        }
        break;
      case "delete": {
        const gone = item.folder
          ? work.stmt("DELETE FROM cloud_files WHERE job = ? AND path >= ? AND path < ?")
            .run(job, ...underBounds(e.path)).changes
          : work.stmt("DELETE FROM cloud_files WHERE job = ? AND path = ?").run(job, e.path)
            .changes;
        if (Number(gone) !== e.changed) return false;
        break;
      }
      default:
        return false;
    }
  }
  put.flush();
  return true;
}

type Entry = PackResult["entries"][number];

function foldFileMove(work: WorkDb, job: number, e: Entry): boolean {
  if (e.version === undefined || e.changed !== 1) return false;
  if (e.newPath === e.path) return false;
  work.stmt("DELETE FROM cloud_files WHERE job = ? AND path = ?").run(job, e.newPath!);
  const moved = work.stmt("UPDATE cloud_files SET path = ?, version = ? WHERE job = ? AND path = ?")
    .run(e.newPath!, e.version, job, e.path).changes;
  return Number(moved) === 1;
}

/**
 * The network gave the moved files consecutive versions in the byte order of their old
 * paths (`versions`: first and last); the rows go through a temporary table because the new
 * paths may fall inside the old folder's range (`a/b` moved to `a`).
 */
function foldFolderMove(work: WorkDb, job: number, e: Entry): boolean {
  const [lo, hi] = underBounds(e.path);
  const count = work.cloudCount(job, e.path);
  if (!e.versions || count !== e.changed || e.versions[1] - e.versions[0] + 1 !== count) {
    return false;
  }
  work.db.exec(
    `CREATE TEMP TABLE IF NOT EXISTS fold_move (path TEXT, size INTEGER, mtime_ns TEXT,
       mode INTEGER, hash TEXT, version INTEGER)`,
  );
  work.db.exec("DELETE FROM temp.fold_move");
  work.stmt(
    `INSERT INTO temp.fold_move (path, size, mtime_ns, mode, hash, version)
     SELECT ? || substr(path, length(?) + 1), size, mtime_ns, mode, hash,
       ? + row_number() OVER (ORDER BY path) - 1
     FROM cloud_files WHERE job = ? AND path >= ? AND path < ?`,
  ).run(e.newPath!, e.path, e.versions[0], job, lo, hi); // length() counts characters, as substr
  work.stmt("DELETE FROM cloud_files WHERE job = ? AND path >= ? AND path < ?").run(job, lo, hi);
  work.stmt(
    `INSERT OR REPLACE INTO cloud_files (job, path, size, mtime_ns, mode, hash, version)
     SELECT ?, path, size, mtime_ns, mode, hash, version FROM temp.fold_move`,
  ).run(job);
  work.db.exec("DELETE FROM temp.fold_move");
  return true;
}
