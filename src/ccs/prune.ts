/**
 * Prune planning: which cloud deletes this run may send. At most the job's delete collar
 * per run (the rest wait for the next run), none at all when the source looks unmounted,
 * empty or unreadable, so a missing disk never empties the cloud.
 *
 * @module
 */

/** What the peek saw of the source. */
export interface SourceHealth {
  /** The source root exists and is a directory. */
  rootExists: boolean;
  /** Files the walk found (after filters). */
  localFiles: number;
  /** Files the cloud has for the job. */
  cloudFiles: number;
  /** Entries the walk could not read. */
  walkErrors: number;
}

/** Options of {@link planPrune}. */
export interface PruneOptions {
  /** The job's delete collar. @default 1500 */
  collar?: number;
  /** `--nomaxdelete`: no collar. */
  noMaxDelete?: boolean;
  /** `--skipdeletes`: no deletes this run. */
  skipDeletes?: boolean;
  /**
   * How many deletes there are when `deletes` holds only the first of them (at least the
   * collar's worth, in order): the caller need not load them all. @default deletes.length
   */
  total?: number;
}

/** The decision. */
export interface PrunePlan<T> {
  /** Deletes to send now. */
  now: T[];
  /** Deletes left for later runs (over the collar, skipped or blocked). */
  pending: number;
  /** Why no delete at all is sent (a job error), if blocked. */
  blocked?: string;
  /** Deletes were skipped on request. */
  skipped?: boolean;
}

/**
 * Why deletes must not happen for this source, or undefined when they may.
 *
 * @example
 * ```ts
 * deleteBlocker({ rootExists: false, localFiles: 0, cloudFiles: 10, walkErrors: 0 });
 * // "the source root is missing (unmounted?)"
 * ```
 */
export function deleteBlocker(h: SourceHealth): string | undefined {
  if (!h.rootExists) return "the source root is missing (unmounted?)";
  if (h.walkErrors > 0) return `the source walk had ${h.walkErrors} error(s)`;
  if (h.localFiles === 0 && h.cloudFiles > 0) {
    return `the source is empty while the cloud has ${h.cloudFiles} file(s) (unmounted?)`;
  }
  return undefined;
}

/**
 * Picks the deletes to send this run from `deletes` (in the order given, normally by path).
 */
export function planPrune<T>(
  deletes: T[],
  health: SourceHealth,
  options: PruneOptions = {},
): PrunePlan<T> {
  const total = Math.max(options.total ?? 0, deletes.length);
  const blocked = deleteBlocker(health);
  if (blocked) return { now: [], pending: total, blocked };
  if (options.skipDeletes) return { now: [], pending: total, skipped: true };
  const collar = options.noMaxDelete ? Infinity : Math.max(0, options.collar ?? 1500);
  const now = deletes.slice(0, collar);
  return { now, pending: total - now.length };
}
