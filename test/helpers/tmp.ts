/**
 * Temporary directories and application homes for tests.
 *
 * @module
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { initHome } from "../../src/core/app_dir.ts";
import type { HomePaths } from "../../src/core/home.ts";

/** A temporary directory removed after the test file. */
export function tempDir(prefix = "cncop-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A fresh application directory. */
export function tempHome(): HomePaths {
  return initHome(join(tempDir(), "home")).paths;
}
