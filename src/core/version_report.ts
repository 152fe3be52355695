/**
 * What `cncop version` reports.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { cncopVersion } from "./version.ts";

/** The facts `cncop version` prints. */
export interface VersionReport {
  version: string;
  platform: string;
  native: string;
  runtime: string;
  sqlite: string;
}

async function nativeLine(): Promise<string> {
  try {
    const mod = (await import("../native/mod.ts")) as {
      nativeStatus?: () => { loaded: boolean; reason?: string; path?: string };
    };
    const st = mod.nativeStatus?.();
    if (!st) return "not available (no status)";
    return st.loaded
      ? `loaded (${st.path ?? "addon"})`
      : `not loaded: ${st.reason ?? "unknown"}; using portable twins`;
  } catch (err) {
    return `not available: ${err instanceof Error ? err.message : String(err)}`;
  }
}

/** Collects the version report. */
export async function versionReport(): Promise<VersionReport> {
  const db = new DatabaseSync(":memory:");
  const sqlite = (db.prepare("SELECT sqlite_version() AS v").get() as { v: string }).v;
  db.close();
  const deno = (globalThis as { Deno?: { version: { deno: string } } }).Deno;
  return {
    version: cncopVersion,
    platform: `${process.platform}-${process.arch}`,
    native: await nativeLine(),
    runtime: deno
      ? `deno ${deno.version.deno} (node compat ${process.version})`
      : `node ${process.version}`,
    sqlite,
  };
}
