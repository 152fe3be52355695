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

const made: string[] = [];
// Registered when this module is first imported (at a test file's top level), so it runs at
// the end of the file; an after() inside a before() hook would run when the hook ends.
after(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** A temporary directory removed after the test file. */
export function tempDir(prefix = "cncop-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** A fresh application directory. */
export function tempHome(): HomePaths {
  return initHome(join(tempDir(), "home")).paths;
}
