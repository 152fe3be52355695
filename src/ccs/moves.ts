/**
 * Move promotion: turns DELETE + ADD pairs that are the same file moved into MOVEs, and a
 * renamed folder into one folder MOVE.
 *
 * 1. Deletes are bucketed by size; only an add whose size matches some delete is hashed
 *    (through the caller's `hashOf`, which uses forks and the file cache before reading).
 * 2. Among deletes with the same size and hash, the one with the same base name and mtime
 *    wins, then the same base name, then the same mtime, then the first by path.
 * 3. Each pair `a/x/f -> b/x/f` is reduced to the rename of its top differing prefix
 *    (`a -> b`). When every cloud file under `a/` is gone locally, the pairs of that group
 *    become one folder MOVE; the folder's files that changed are UPDATEs (deltas against
 *    their old version) at the new path, the ones that vanished are DELETEs there.
 *
 * Every step is a map lookup or a sort: O(n log n) for n adds and deletes.
 *
 * @module
 */

/** A local file the cloud does not have at this path. */
export interface AddCandidate {
  path: string;
  size: number;
  mtimeNs: string;
}

/** A cloud file that is gone locally at this path. */
export interface DeleteCandidate {
  path: string;
  size: number;
  mtimeNs: string;
  hash: string;
  version: number;
}

/** A file MOVE: `from` (cloud) becomes `to`. */
export interface FileMove<A extends AddCandidate = AddCandidate> {
  from: string;
  to: string;
  add: A;
  del: DeleteCandidate;
}

/** A folder MOVE: everything under `from/` moves to the same relative path under `to/`. */
export interface FolderMove {
  from: string;
  to: string;
  /** Cloud files moved. */
  files: number;
}

/** An UPDATE of a file in a moved folder: `add`'s content as a delta against `base`. */
export interface MovedUpdate<A extends AddCandidate = AddCandidate> {
  add: A;
  base: DeleteCandidate;
}

/** What {@link promoteMoves} decided. */
export interface MovePlan<A extends AddCandidate = AddCandidate> {
  folderMoves: FolderMove[];
  /** File moves, applied after the folder moves (`from` already rewritten through them). */
  fileMoves: FileMove<A>[];
  /** Changed files inside moved folders. */
  updates: MovedUpdate<A>[];
  /** Paths under a moved folder's new name to delete after the move (vanished files). */
  movedDeletes: DeleteCandidate[];
  /** Adds that stay ADDs. */
  adds: A[];
  /** Deletes that stay DELETEs. */
  deletes: DeleteCandidate[];
  /** Files hashed to find pairs. */
  hashed: number;
}

/** Options of {@link promoteMoves}. */
export interface PromoteOptions<A extends AddCandidate> {
  /** Content hash (BLAKE3 hex) of a local add; undefined when it cannot be read. */
  hashOf: (add: A) => Promise<string | undefined>;
  /** Number of cloud files under `prefix/` (all of them, not only the deleted ones). */
  cloudCountUnder: (prefix: string) => number;
  /** Smallest number of file moves that makes a folder move. @default 2 */
  minFolderFiles?: number;
}

/** The last `/`-segment of a path. */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/**
 * The renamed prefixes of a move: strips the path segments both ends share. `a/x/f` to
 * `b/x/f` gives `["a", "b"]`; undefined when the file name itself differs or one side has
 * no prefix left.
 */
export function renamedPrefix(from: string, to: string): [string, string] | undefined {
  const a = from.split("/");
  const b = to.split("/");
  let i = a.length - 1;
  let j = b.length - 1;
  while (i > 0 && j > 0 && a[i] === b[j]) {
    i--;
    j--;
  }
  if (i === a.length - 1) return undefined; // the file name differs
  if (a[i] === b[j]) return undefined; // one side ran out: moved into or out of a folder
  return [a.slice(0, i + 1).join("/"), b.slice(0, j + 1).join("/")];
}

const cmp = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);

/** First index in sorted `arr` whose value is >= `v`. */
function lowerBound(arr: string[], v: string): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

interface Pool {
  byNameMtime: Map<string, DeleteCandidate[]>;
  byName: Map<string, DeleteCandidate[]>;
  byMtime: Map<string, DeleteCandidate[]>;
  all: DeleteCandidate[];
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const l = m.get(k);
  if (l) l.push(v);
  else m.set(k, [v]);
}

/** Pops the first unused entry of a list (lazy removal keeps every pop amortised O(1)). */
function popUnused(list: DeleteCandidate[] | undefined, used: Set<DeleteCandidate>) {
  if (!list) return undefined;
  while (list.length > 0) {
    const d = list[list.length - 1]!;
    list.pop();
    if (!used.has(d)) return d;
  }
  return undefined;
}

/**
 * Pairs adds with deletes of the same content and collapses folder renames.
 *
 * @example
 * ```ts
 * const plan = await promoteMoves(adds, deletes, {
 *   hashOf: (a) => hashFile(a.path),
 *   cloudCountUnder: (p) => work.cloudCount(job, p),
 * });
 * ```
 */
export async function promoteMoves<A extends AddCandidate>(
  adds: A[],
  deletes: DeleteCandidate[],
  options: PromoteOptions<A>,
): Promise<MovePlan<A>> {
  const minFolder = options.minFolderFiles ?? 2;
  const sizes = new Set<number>();
  for (const d of deletes) sizes.add(d.size);

  // Pools of deletes by size + hash, built for sizes some add has.
  const pools = new Map<string, Pool>();
  for (const d of [...deletes].sort((x, y) => cmp(y.path, x.path))) {
    const k = `${d.size}:${d.hash}`;
    let p = pools.get(k);
    if (!p) {
      p = { byNameMtime: new Map(), byName: new Map(), byMtime: new Map(), all: [] };
      pools.set(k, p);
    }
    const name = baseName(d.path);
    push(p.byNameMtime, `${name}\0${d.mtimeNs}`, d);
    push(p.byName, name, d);
    push(p.byMtime, d.mtimeNs, d);
    p.all.push(d); // reverse path order: pop() gives the first by path
  }

  const used = new Set<DeleteCandidate>();
  const pairs: FileMove<A>[] = [];
  const paired = new Set<A>();
  let hashed = 0;
  for (const a of [...adds].sort((x, y) => cmp(x.path, y.path))) {
    if (!sizes.has(a.size)) continue;
    hashed++;
    const h = await options.hashOf(a);
    if (h === undefined) continue;
    const p = pools.get(`${a.size}:${h}`);
    if (!p) continue;
    const name = baseName(a.path);
    const d = popUnused(p.byNameMtime.get(`${name}\0${a.mtimeNs}`), used) ??
      popUnused(p.byName.get(name), used) ??
      popUnused(p.byMtime.get(a.mtimeNs), used) ??
      popUnused(p.all, used);
    if (!d) continue;
    used.add(d);
    paired.add(a);
    pairs.push({ from: d.path, to: a.path, add: a, del: d });
  }

  // Group pairs by renamed prefix.
  const groups = new Map<string, { from: string; to: string; pairs: FileMove<A>[] }>();
  for (const m of pairs) {
    const r = renamedPrefix(m.from, m.to);
    if (!r) continue;
    const k = `${r[0]}\0${r[1]}`;
    const g = groups.get(k);
    if (g) g.pairs.push(m);
    else groups.set(k, { from: r[0], to: r[1], pairs: [m] });
  }

  const delPaths = deletes.map((d) => d.path).sort(cmp);
  const delByPath = new Map(deletes.map((d) => [d.path, d]));
  const pairByFrom = new Map(pairs.map((m) => [m.from, m]));
  const unpairedAdds = new Map<string, A>();
  for (const a of adds) if (!paired.has(a)) unpairedAdds.set(a.path, a);

  const folderMoves: FolderMove[] = [];
  const updates: MovedUpdate<A>[] = [];
  const movedDeletes: DeleteCandidate[] = [];
  const consumedDel = new Set<string>(); // delete paths a folder move took care of
  const consumedPair = new Set<FileMove<A>>();
  const movedPrefixes = new Map<string, string>(); // old folder -> new folder

  const ordered = [...groups.values()].sort((x, y) =>
    y.pairs.length - x.pairs.length || cmp(x.from, y.from)
  );
  for (const g of ordered) {
    if (g.pairs.length < minFolder) continue;
    if (g.pairs.some((m) => consumedDel.has(m.del.path))) continue;
    if (isUnder(g.to, g.from) || isUnder(g.from, g.to)) continue;
    const lo = lowerBound(delPaths, `${g.from}/`);
    const hi = lowerBound(delPaths, `${g.from}0`);
    // Every cloud file under the old folder must be gone locally.
    if (hi - lo !== options.cloudCountUnder(g.from)) continue;
    let clash = false;
    for (let i = lo; i < hi && !clash; i++) {
      if (consumedDel.has(delPaths[i]!)) clash = true;
    }
    if (clash) continue;
    // Promote: walk the folder's deleted files.
    const mine = new Set(g.pairs);
    for (let i = lo; i < hi; i++) {
      const path = delPaths[i]!;
      consumedDel.add(path);
      const m = pairByFrom.get(path);
      if (m && mine.has(m)) {
        consumedPair.add(m);
        continue;
      }
      const newPath = g.to + path.slice(g.from.length);
      if (m) {
        // Moved elsewhere: a file move from its place in the moved folder.
        m.from = newPath;
        continue;
      }
      const del = delByPath.get(path)!;
      const add = unpairedAdds.get(newPath);
      if (add) {
        unpairedAdds.delete(newPath);
        updates.push({ add, base: del });
      } else {
        movedDeletes.push({ ...del, path: newPath });
      }
    }
    movedPrefixes.set(g.from, g.to);
    folderMoves.push({ from: g.from, to: g.to, files: hi - lo });
  }

  const fileMoves = pairs.filter((m) => !consumedPair.has(m));
  const remainingDeletes = deletes.filter((d) => !used.has(d) && !consumedDel.has(d.path));
  return {
    folderMoves,
    fileMoves,
    updates,
    movedDeletes,
    adds: adds.filter((a) => unpairedAdds.get(a.path) === a),
    deletes: remainingDeletes,
    hashed,
  };
}

function isUnder(path: string, folder: string): boolean {
  return path === folder || path.startsWith(`${folder}/`);
}
