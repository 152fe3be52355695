/**
 * Lets a zx script `import { $ } from "zx"` (or `"zx/globals"`, `"zx/core"`) and get the zx
 * built into cncop: on a device there is no node_modules for the import to find, and even
 * beside the sources a script in `Bin/` has none above it.
 *
 * Uses Node's synchronous module hooks (`module.registerHooks`); where they are missing
 * (Deno), scripts still have zx's globals, only the import is not redirected.
 *
 * @module
 */
import * as nodeModule from "node:module";

const KEY = Symbol.for("cncop.zx");
const SPECIFIERS = new Set(["zx", "zx/globals", "zx/core"]);

interface ResolveResult {
  url: string;
  shortCircuit?: boolean;
}

interface LoadResult {
  format: string;
  source?: string;
  shortCircuit?: boolean;
}

interface Hooks {
  resolve(
    specifier: string,
    context: unknown,
    next: (s: string, c: unknown) => ResolveResult,
  ): ResolveResult;
  load(url: string, context: unknown, next: (u: string, c: unknown) => LoadResult): LoadResult;
}

let registered = false;

/** The ES module source that re-exports `zx`'s named exports from the global registry. */
export function zxModuleSource(zx: Record<string, unknown>): string {
  const names = Object.keys(zx).filter((k) => k !== "default" && /^[A-Za-z_$][\w$]*$/.test(k));
  return [
    `const z = globalThis[Symbol.for("cncop.zx")];`,
    `export const { ${names.join(", ")} } = z;`,
    "export default z;",
    "",
  ].join("\n");
}

/**
 * Redirects imports of zx to `zx` (the module namespace of the bundled zx); returns false
 * where the runtime has no synchronous module hooks. Idempotent.
 *
 * @example
 * ```ts
 * redirectZxImports(await import("zx"));
 * await import(pathToFileURL(script).href); // its `import { $ } from "zx"` now resolves
 * ```
 */
export function redirectZxImports(zx: Record<string, unknown>): boolean {
  const register = (nodeModule as { registerHooks?: (h: Hooks) => unknown }).registerHooks;
  if (typeof register !== "function") return false;
  (globalThis as Record<symbol, unknown>)[KEY] = zx;
  if (registered) return true;
  const source = zxModuleSource(zx);
  register({
    resolve(specifier, context, next) {
      if (SPECIFIERS.has(specifier)) return { url: `cncop-zx:${specifier}`, shortCircuit: true };
      return next(specifier, context);
    },
    load(url, context, next) {
      if (url.startsWith("cncop-zx:")) return { format: "module", source, shortCircuit: true };
      return next(url, context);
    },
  });
  registered = true;
  return true;
}
