/**
 * Gives memory back between the batches of a long run: a full garbage collection when the
 * heap has grown (the process runs with `--expose-gc`, which NODE_FLAGS asks for) and the
 * allocator's free pages (the native core's `trimMemory`). V8 otherwise lets dead objects
 * of many batches pile up in old space up to its own limit, far above the agents' 200 MB
 * target.
 *
 * @module
 */
import { getHeapStatistics } from "node:v8";

/** Heap size above which a batch boundary collects garbage. */
const COLLECT_ABOVE = 32 * 1024 * 1024;
/**
 * At most this often, and not in a process's first 2 s: a full collection costs tens of ms
 * on the run's critical path, and a short run (a folder rename: one pack) ends before its
 * garbage matters.
 */
const RELEASE_EVERY_MS = 2000;
let lastRelease = Date.now() - process.uptime() * 1000;
/**
 * The allocator is trimmed at most this often: `malloc_trim` hands every free page back, and
 * the next batch faults them in again, zeroed. Once per pack (about ten a second) cost a
 * first backup of the Linux tree 10-15% of its CPU, in all three processes.
 */
const TRIM_EVERY_MS = 1000;
let lastTrim = 0;

/**
 * Trims the allocator (at most every second), and collects garbage (at most every 2 s) if
 * the heap has grown.
 */
export function releaseMemory(core: { trimMemory(): boolean }): void {
  const now = Date.now();
  const gc = (globalThis as { gc?: () => void }).gc;
  const collect = !!gc && now - lastRelease >= RELEASE_EVERY_MS &&
    getHeapStatistics().used_heap_size > COLLECT_ABOVE;
  if (collect) {
    lastRelease = now;
    gc();
  }
  // What a collection freed (external buffers among it) is handed back at once.
  if (!collect && now - lastTrim < TRIM_EVERY_MS) return;
  lastTrim = now;
  core.trimMemory();
}
