/**
 * The release archive of this machine's platform, built once per source state and shared by
 * the test files that need it (test/e2e/release*.test.ts, test/e2e/examples*.test.ts), and
 * unpacked into throw-away application directories.
 *
 * The build lives in `build/test-release/<key>/`, where the key hashes every input of the
 * build (sources, scripts, package files, the native addon); a lock directory stops two test
 * processes from building at once.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { tmpdir } from "node:os";

const temps: string[] = [];

/**
 * A temporary directory, removed by {@link removeTemps} (call it from the file's `after`:
 * the helpers' `tempDir` ties removal to the hook it is called from).
 */
export function tempDir(prefix = "cncop-e2e-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
}

/** Removes every directory {@link tempDir} made. */
export function removeTemps(): void {
  for (const d of temps.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** The repository root. */
export const repo = fileURLToPath(new URL("../../", import.meta.url));

/** What scripts/release.mjs made. */
export interface ReleaseBuild {
  /** The archive (build/test-release/<key>/dist/cncop-<v>-<os>-<arch>.tar.gz). */
  archive: string;
  /** Its top folder name. */
  top: string;
  /** The SHA-256 of the archive, as its .sha256 file says. */
  sha256: string;
  /** build_sea.mjs's manifest: bundle, native and executable hashes. */
  manifest: {
    target: string;
    node: string;
    bundle: { sha256: string };
    native: { sha256: string } | null;
    executable: { sha256: string };
  };
  /** The build directory of this key. */
  dir: string;
  /** The {@link inputsKey} it was built from. */
  key: string;
}

/** A hash of every input of the release build. */
export function inputsKey(): string {
  const h = createHash("sha256");
  const add = (p: string) => {
    const st = statSync(p, { throwIfNoEntry: false });
    if (st === undefined) return;
    if (st.isDirectory()) {
      for (const n of readdirSync(p).sort()) add(join(p, n));
    } else {
      h.update(p.slice(repo.length)).update("\0").update(readFileSync(p)).update("\0");
    }
  };
  for (
    const p of [
      "src",
      "scripts/build_sea.mjs",
      "scripts/release.mjs",
      "package.json",
      "package-lock.json",
      "README.md",
      "LICENSE",
      "native/cncop_native.node",
    ]
  ) add(join(repo, p));
  return h.digest("hex").slice(0, 16);
}

/** Runs scripts/release.mjs into `dist` with the pinned Node; throws with its output. */
export function runRelease(dist: string, extra: string[] = []): void {
  const r = spawnSync(process.execPath, [
    join(repo, "scripts", "release.mjs"),
    "--out",
    dist,
    ...extra,
  ], {
    cwd: repo,
    encoding: "utf8",
    env: { ...process.env, SOURCE_DATE_EPOCH: "1767225600" },
  });
  if (r.status !== 0) throw new Error(`release.mjs failed (${r.status}): ${r.stderr}${r.stdout}`);
}

/** Reads what a release run left in `dist` (and the sea/ folder beside it). */
export function readRelease(dist: string): Omit<ReleaseBuild, "dir" | "key"> {
  const name = readdirSync(dist).find((n) => n.endsWith(".tar.gz") || n.endsWith(".zip"))!;
  const archive = join(dist, name);
  const sha256 = readFileSync(`${archive}.sha256`, "utf8").split(/\s+/)[0]!;
  const top = name.replace(/\.(tar\.gz|zip)$/, "");
  const seaDir = join(dist, "..", "sea", `${process.platform}-${process.arch}`);
  const manifest = JSON.parse(readFileSync(join(seaDir, "manifest.json"), "utf8"));
  return { archive, top, sha256, manifest };
}

/** A lock left by a process that is gone (or older than ten minutes). */
function lockIsStale(lock: string): boolean {
  const st = statSync(lock, { throwIfNoEntry: false });
  if (st === undefined) return false;
  if (Date.now() - st.mtimeMs > 10 * 60_000) return true;
  let pid: number;
  try {
    pid = Number(readFileSync(join(lock, "pid"), "utf8"));
  } catch {
    return Date.now() - st.mtimeMs > 5_000; // the holder has not written its pid yet
  }
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as { code?: string }).code === "ESRCH";
  }
}

/** Builds (or reuses) the release archive of this platform. */
export async function releaseBuild(): Promise<ReleaseBuild> {
  const root = join(repo, "build", "test-release");
  mkdirSync(root, { recursive: true });
  const key = inputsKey();
  const dir = join(root, key);
  const done = join(dir, "done");
  const lock = join(root, `${key}.lock`);
  for (;;) {
    if (existsSync(done)) return { ...readRelease(join(dir, "dist")), dir, key };
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, "pid"), String(process.pid));
      break;
    } catch {
      if (lockIsStale(lock)) rmSync(lock, { recursive: true, force: true });
      await sleep(250);
    }
  }
  try {
    if (existsSync(done)) return { ...readRelease(join(dir, "dist")), dir, key };
    // Builds of other source states are of no further use once no test run can be using
    // them (another run, of other sources, may be using one right now).
    for (const n of readdirSync(root)) {
      const st = statSync(join(root, n), { throwIfNoEntry: false });
      if (n !== key && !n.endsWith(".lock") && st && Date.now() - st.mtimeMs > 15 * 60_000) {
        rmSync(join(root, n), { recursive: true, force: true });
      }
    }
    const tmp = join(root, `${key}.tmp`);
    rmSync(tmp, { recursive: true, force: true });
    runRelease(join(tmp, "dist"));
    writeFileSync(join(tmp, "done"), "");
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
    return { ...readRelease(join(dir, "dist")), dir, key };
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Unpacks `archive` into a new temporary directory; returns the application directory. */
export function unpack(build: ReleaseBuild): string {
  const into = tempDir("cncop-release-");
  const r = spawnSync("tar", ["xzf", build.archive, "-C", into], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`tar failed: ${r.stderr}`);
  return join(into, build.top);
}

/** Tools a clean PATH offers (what pre/post commands and zx's `$` need); never node. */
const TOOLS = [
  "bash",
  "sh",
  "cat",
  "cp",
  "echo",
  "env",
  "false",
  "grep",
  "ls",
  "mkdir",
  "mountpoint",
  "mv",
  "pg_dump",
  "rm",
  "sqlite3",
  "test",
  "true",
  "uname",
];

/**
 * A directory holding links to a few system tools, to use as the whole PATH: no node, deno
 * or npm can be found through it.
 */
export function cleanPath(): string {
  const dir = join(tempDir("cncop-path-"), "bin");
  mkdirSync(dir);
  for (const tool of TOOLS) {
    for (const d of (process.env.PATH ?? "/usr/bin:/bin").split(delimiter)) {
      const p = join(d, tool);
      if (d !== "" && existsSync(p)) {
        symlinkSync(p, join(dir, tool));
        break;
      }
    }
  }
  for (const forbidden of ["node", "deno", "npm", "npx"]) {
    if (existsSync(join(dir, forbidden))) throw new Error(`${forbidden} is on the clean PATH`);
  }
  return dir;
}

/**
 * The environment of a device with no Node.js: only the clean PATH, HOME empty, a private
 * TMPDIR (where the addon is extracted), and `extra`.
 */
export function cleanEnv(
  pathDir: string,
  tmp: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return { PATH: pathDir, HOME: "", TMPDIR: tmp, LANG: "C.UTF-8", ...extra };
}
