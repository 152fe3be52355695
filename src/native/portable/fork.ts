/**
 * Portable twin of forks. Node has no extended-attribute or alternate-data-stream API, so
 * without the native core forks are unsupported: {@link forksSupported} says false and the
 * other functions throw. Callers (the CCS agent) check forksSupported() first and fall back
 * to their state database.
 *
 * @module
 */

import { CncopError } from "../../core/errors.ts";

function unsupported(): never {
  throw new CncopError("forks need the native core", {
    hint: "run 'npm run build:native', or use --nofork",
  });
}

/** Always null-or-throw: not supported without the native core. */
export function forkRead(_path: string, _name: string): Buffer | null {
  return unsupported();
}

/** Not supported without the native core. */
export function forkWrite(_path: string, _name: string, _value: Uint8Array): void {
  unsupported();
}

/** Not supported without the native core. */
export function forkRemove(_path: string, _name: string): void {
  unsupported();
}

/** False: the portable core has no fork support. */
export function forksSupported(_dir: string): boolean {
  return false;
}
