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

/** Collects garbage if the heap has grown, and trims the allocator. Once per batch. */
export function releaseMemory(core: { trimMemory(): boolean }): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc && getHeapStatistics().used_heap_size > COLLECT_ABOVE) gc();
  core.trimMemory();
}
