/**
 * The walk's order, shared by the native walk, its portable twin and their tests.
 *
 * @module
 */

/**
 * The walk order: component by component, by the bytes of the UTF-8 names (so `a/b` sorts
 * before `a.b`, because a directory's content follows it directly).
 */
export function comparePaths(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a.replaceAll("/", "\0")), Buffer.from(b.replaceAll("/", "\0")));
}
