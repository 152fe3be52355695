/**
 * V8 flags every cncop process runs with. The single executable embeds them (sea-config
 * `execArgv`); the dispatcher passes them when it starts a program from the sources.
 *
 * - `--max-semi-space-size=8`: on a large machine V8 sizes the young generation at 64 MB, a
 *   third of an agent's peak memory; 8 MB semi-spaces cost a few more scavenges.
 * - `--expose-gc`: long runs collect garbage between batches (src/core/memory.ts) instead
 *   of letting a batch's dead objects pile up in old space.
 *
 * @module
 */

/** Node/V8 command-line flags for cncop processes. */
export const NODE_FLAGS: readonly string[] = ["--max-semi-space-size=8", "--expose-gc"];
