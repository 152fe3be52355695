/**
 * V8 flags every cncop process runs with. The single executable embeds them (sea-config
 * `execArgv`); the dispatcher passes them when it starts a program from the sources.
 *
 * - `--max-semi-space-size=8`: on a large machine V8 sizes the young generation at 64 MB, a
 *   third of an agent's peak memory; 8 MB semi-spaces cost a few more scavenges.
 * - `--initial-old-space-size=64`: a floor under V8's old-space limit. Without it the limit
 *   follows the small live heap (10-20 MB) so closely that each pack's short-lived objects
 *   start a full collection: cncopd ran 47 of them in a first backup of the Linux tree, 13
 *   with this floor, and the three processes took about 1 s less CPU (decisions/0052).
 * - `--expose-gc`: long runs collect garbage between batches (src/core/memory.ts) instead
 *   of letting a batch's dead objects pile up in old space.
 *
 * @module
 */

/** Node/V8 command-line flags for cncop processes. */
export const NODE_FLAGS: readonly string[] = [
  "--max-semi-space-size=8",
  "--initial-old-space-size=64",
  "--expose-gc",
];
