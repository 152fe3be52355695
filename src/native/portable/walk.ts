/**
 * Portable twin of the native walk (native/src/walk.rs): same entries, same order, same
 * error texts. Directory listings run ahead of the ordered depth-first walk through the
 * libuv thread pool, bounded like the native one by the directories on the current path.
 *
 * @module
 */

import type { BigIntStats, Dirent } from "node:fs";
import { lstat, opendir, readlink, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import picomatch from "picomatch";
import { CncopError } from "../../core/errors.ts";
import type { EntryKind, WalkEntry, WalkOptions } from "../types.ts";

const TEXTS: Record<string, string> = {
  EACCES: "permission denied",
  ENOENT: "vanished",
  ELOOP: "symlink loop",
  EPERM: "operation not permitted",
  ENOTDIR: "not a directory",
  ENAMETOOLONG: "name too long",
  EIO: "i/o error",
};

/** `CODE: description`, identical to error_text() in the native core. */
export function errorText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | null)?.code ?? "EIO";
  return `${code}: ${TEXTS[code] ?? "error"}`;
}

export { comparePaths } from "../walk_order.ts";

interface Child {
  name: string;
  lstat?: BigIntStats;
  lstatError?: unknown;
  link?: string;
  target?: BigIntStats;
  targetError?: unknown;
}

type Listing = { children: Child[] } | { error: unknown };

async function listDir(dir: string, follow: boolean): Promise<Listing> {
  let names: string[];
  try {
    const d = await opendir(dir);
    names = [];
    for await (const de of d as AsyncIterable<Dirent>) names.push(de.name);
  } catch (error) {
    return { error };
  }
  const children = await Promise.all(names.map(async (name): Promise<Child> => {
    const abs = join(dir, name);
    const c: Child = { name };
    try {
      c.lstat = await lstat(abs, { bigint: true });
    } catch (e) {
      c.lstatError = e;
      return c;
    }
    if (c.lstat.isSymbolicLink()) {
      try {
        c.link = await readlink(abs);
      } catch {
        // vanished between lstat and readlink: no target to report
      }
      if (follow) {
        try {
          c.target = await stat(abs, { bigint: true });
        } catch (e) {
          c.targetError = e;
        }
      }
    }
    return c;
  }));
  const keyed = children.map((c) => ({ c, k: Buffer.from(c.name) }));
  keyed.sort((x, y) => Buffer.compare(x.k, y.k));
  return { children: keyed.map((x) => x.c) };
}

function kindOf(s: BigIntStats): EntryKind {
  if (s.isSymbolicLink()) return "symlink";
  if (s.isDirectory()) return "dir";
  if (s.isFile()) return "file";
  return "other";
}

function blank(path: string): WalkEntry {
  return { path, kind: "error", size: 0, mtimeNs: 0n, ctimeNs: 0n, ino: 0n, dev: 0n, mode: 0 };
}

function fill(e: WalkEntry, s: BigIntStats): void {
  e.size = Number(s.size);
  e.mtimeNs = s.mtimeNs;
  e.ctimeNs = s.ctimeNs;
  e.ino = s.ino;
  e.dev = s.dev;
  e.mode = Number(s.mode);
}

type Matcher = (path: string) => boolean;

function matcher(patterns: string[] | undefined): Matcher | undefined {
  if (!patterns || patterns.length === 0) return undefined;
  return picomatch(patterns, { dot: true });
}

interface Plan {
  entry: WalkEntry;
  included: boolean;
  abs: string;
  listing?: Promise<Listing>;
  devIno: string;
}

/** Recursive scan, sorted, in batches (portable). See NativeCore.walk. */
export async function* walk(root: string, options: WalkOptions = {}): AsyncGenerator<WalkEntry[]> {
  const skipLinks = options.skipLinks ?? false;
  const follow = (options.followLinks ?? true) && !skipLinks;
  const oneFs = options.oneFileSystem ?? false;
  const reportExcluded = options.reportExcluded ?? false;
  const batchSize = options.batchSize && options.batchSize > 0 ? options.batchSize : 4096;
  let include: Matcher | undefined;
  let exclude: Matcher | undefined;
  try {
    include = matcher(options.include);
    exclude = matcher(options.exclude);
  } catch (e) {
    throw new CncopError(`walk: bad glob: ${(e as Error).message}`, { cause: e });
  }
  const rootAbs = resolve(root);
  let rootStat: BigIntStats;
  try {
    rootStat = await stat(rootAbs, { bigint: true });
  } catch (e) {
    throw new CncopError(`walk: ${rootAbs}: ${errorText(e)}`, { cause: e });
  }
  if (!rootStat.isDirectory()) throw new CncopError(`walk: ${rootAbs} is not a directory`);
  const rootListing = await listDir(rootAbs, follow);
  if ("error" in rootListing) {
    throw new CncopError(`walk: ${rootAbs}: ${errorText(rootListing.error)}`, {
      cause: rootListing.error,
    });
  }

  let batch: WalkEntry[] = [];
  const ancestors: string[] = [`${rootStat.dev}:${rootStat.ino}`];

  // Depth-first with an explicit stack of per-directory plan iterators, so deep trees do
  // not grow the JS call stack.
  const plan = (dirAbs: string, dirRel: string, children: Child[], parentIncluded: boolean) => {
    const plans: Plan[] = [];
    for (const c of children) {
      const rel = dirRel === "" ? c.name : `${dirRel}/${c.name}`;
      if (exclude?.(rel)) continue;
      const included = parentIncluded || include === undefined || include(rel);
      const abs = join(dirAbs, c.name);
      const e = blank(rel);
      let descend = false;
      let devIno = "";
      if (c.lstat === undefined) {
        e.error = errorText(c.lstatError);
      } else {
        let m = c.lstat;
        if (m.isSymbolicLink()) {
          if (skipLinks) continue;
          if (c.link !== undefined) e.linkTarget = c.link;
          if (c.target !== undefined) m = c.target;
        }
        e.kind = kindOf(m);
        fill(e, m);
        if (e.kind === "dir") {
          devIno = `${m.dev}:${m.ino}`;
          if (ancestors.includes(devIno)) {
            e.kind = "error";
            e.error = "ELOOP: symlink loop";
            delete e.linkTarget;
          } else {
            descend = !(oneFs && e.dev !== rootStat.dev);
          }
        }
      }
      const p: Plan = { entry: e, included, abs, devIno };
      if (descend) p.listing = listDir(abs, follow);
      plans.push(p);
    }
    return plans;
  };

  interface Frame {
    plans: Plan[];
    i: number;
  }
  const stack: Frame[] = [{ plans: plan(rootAbs, "", rootListing.children, false), i: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.i >= top.plans.length) {
      stack.pop();
      ancestors.pop();
      continue;
    }
    const p = top.plans[top.i++]!;
    const e = p.entry;
    const show = p.included || reportExcluded;
    if (!p.included) e.excluded = true;
    let next: Frame | undefined;
    if (p.listing !== undefined) {
      const l = await p.listing;
      if ("error" in l) {
        e.kind = "error";
        e.error = errorText(l.error);
        delete e.linkTarget;
      } else {
        ancestors.push(p.devIno);
        next = { plans: plan(p.abs, e.path, l.children, p.included), i: 0 };
      }
    }
    if (show) {
      batch.push(e);
      if (batch.length >= batchSize) {
        yield batch;
        batch = [];
      }
    }
    if (next) stack.push(next);
  }
  if (batch.length > 0) yield batch;
}
