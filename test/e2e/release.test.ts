/**
 * The release archive of this platform, unpacked and run the way a device without Node.js
 * runs it: a PATH holding no node, deno or npm, HOME empty. Builds the archive once per
 * source state (test/e2e/release_build.ts).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join, relative } from "node:path";
import { createInterface } from "node:readline";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, test } from "node:test";
import { NODE_FLAGS } from "../../src/core/runtime_flags.ts";
import {
  cleanEnv,
  cleanPath,
  inputsKey,
  readRelease,
  type ReleaseBuild,
  releaseBuild,
  removeTemps,
  repo,
  runRelease,
  tempDir,
  unpack,
} from "./release_build.ts";
import { writeV1JobsDb } from "../helpers/jobs_v1.ts";
import { type CliResult, runProcess } from "../helpers/run_cli.ts";

type Run = CliResult;

/** Runs `file args` with exactly `env`; kills it after two minutes. */
function run(
  file: string,
  args: string[],
  env: Record<string, string>,
  cwd?: string,
): Promise<Run> {
  return runProcess(file, args, { env, cwd, timeout: 120_000 });
}

function ok(r: Run, what: string): Run {
  assert.equal(r.status, 0, `${what} exited ${r.status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

function sha256(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Path -> SHA-256 of every file under `root`. */
function treeDigest(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.set(relative(root, p), sha256(readFileSync(p)));
    }
  };
  walk(root);
  return out;
}

/** Names, kinds, sizes and times of what is in `dir`. */
function snapshot(dir: string): string[] {
  return readdirSync(dir).sort().map((n) => {
    const st = lstatSync(join(dir, n));
    return `${n} ${st.isSymbolicLink() ? "link" : "file"} ${st.size} ${st.mtimeMs}`;
  });
}

const pinnedNode = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")).devDependencies
  .node as string;
const version = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")).version as string;
/** The programs of DESIGN.md: each must have its name in Bin/. */
const designPrograms = [
  "backupagentdq",
  "backupagentnq",
  "cncopagent",
  "cncopd",
  "cncopjobs",
  "cncopreporter",
  "cncoprestore",
  "w",
];
/** Every program of the table except the `cncop` subcommands. */
const programs = Object.keys(
  ((await import("../../src/cli/programs.ts")) as { programs: Record<string, unknown> }).programs,
).filter((p) => !["init", "version", "zx"].includes(p)).sort();

describe("release archive", { skip: process.platform === "win32" && "tar.gz test" }, () => {
  let build: ReleaseBuild;
  let app: string;
  let pathDir: string;
  let tmp: string;
  let env: Record<string, string>;
  let binBefore: string[];

  before(async () => {
    build = await releaseBuild();
    app = unpack(build);
    pathDir = cleanPath();
    tmp = tempDir("cncop-tmpdir-");
    env = cleanEnv(pathDir, tmp);
    binBefore = snapshot(join(app, "Bin"));
  });
  after(removeTemps);

  test("the archive matches its checksum file and holds a complete application directory", () => {
    assert.equal(sha256(readFileSync(build.archive)), build.sha256);
    const os = { linux: "linux", darwin: "macos" }[process.platform as "linux" | "darwin"];
    assert.equal(build.top, `cncop-${version}-${os}-${process.arch}`);
    assert.equal(build.archive, join(build.dir, "dist", `${build.top}.tar.gz`));
    for (const p of ["Config/cncop3.ini", "README.md", "LICENSE", "Logs", "Spool/Work"]) {
      assert.ok(existsSync(join(app, p)), `${p} in the archive`);
    }
    assert.equal(statSync(join(app, "Bin", "cncop")).mode & 0o111, 0o111, "cncop is executable");
    const names = readdirSync(join(app, "Bin")).sort();
    assert.deepEqual(names, ["cncop", ...programs].sort());
    for (const p of designPrograms) assert.ok(names.includes(p), `Bin/${p}`);
    for (const p of programs) {
      assert.ok(lstatSync(join(app, "Bin", p)).isSymbolicLink(), `${p} is a symlink`);
      assert.equal(readlinkSync(join(app, "Bin", p)), "cncop");
    }
    assert.equal(
      readFileSync(join(app, "LICENSE"), "utf8"),
      readFileSync(join(repo, "LICENSE"), "utf8"),
    );
  });

  test("cncop version reports version, platform, native core, Node and SQLite without node on PATH", async () => {
    const r = ok(await run(join(app, "Bin", "cncop"), ["version"], env), "cncop version");
    assert.match(r.stdout, new RegExp(`^cncop ${version.replace(/\./g, "\\.")}$`, "m"));
    assert.match(r.stdout, new RegExp(`^platform: ${process.platform}-${process.arch}$`, "m"));
    assert.match(r.stdout, new RegExp(`^runtime: node v${pinnedNode.replace(/\./g, "\\.")}$`, "m"));
    assert.match(r.stdout, /^sqlite: \d+\.\d+\.\d+$/m);
    if (build.manifest.native !== null) {
      const sub = `cncop-${version}-${build.manifest.native.sha256.slice(0, 8)}`;
      const m = /^native core: loaded \((.+)\)$/m.exec(r.stdout);
      assert.ok(m, `native core loaded: ${r.stdout}`);
      assert.equal(relative(tmp, m[1]!).split("/").slice(1).join("/"), `${sub}/cncop_native.node`);
      assert.equal(sha256(readFileSync(m[1]!)), build.manifest.native.sha256);
    } else {
      assert.match(r.stdout, /^native core: not loaded: .*built without the native core/m);
    }
    // NODE_OPTIONS meant for some other Node program does not reach the executable.
    const stray = { ...env, NODE_OPTIONS: "--require /nonexistent/hook.js" };
    const help = ok(await run(join(app, "Bin", "cncop"), ["--help"], stray), "cncop --help");
    for (const p of programs) assert.match(help.stdout, new RegExp(`^  ${p} `, "m"));
  });

  test("each program name runs its program, by path and through PATH", async () => {
    const byPath = ok(await run(join(app, "Bin", "cncopjobs"), ["--help"], env), "cncopjobs");
    assert.match(byPath.stdout, /^Usage: cncopjobs /m);
    const onPath = { ...env, PATH: `${join(app, "Bin")}:${pathDir}` };
    const d = ok(await run("cncopd", ["--help"], onPath), "cncopd via PATH");
    assert.match(d.stdout, /^Usage: cncopd /m);
    const sub = ok(await run("cncop", ["w", "--help"], onPath), "cncop w");
    assert.match(sub.stdout, /^Usage: w /m);
  });

  test("cncop init makes a complete application directory from the executable alone", async () => {
    const dir = join(tempDir(), "app");
    mkdirSync(join(dir, "Bin"), { recursive: true });
    copyFileSync(join(app, "Bin", "cncop"), join(dir, "Bin", "cncop"));
    const exe = join(dir, "Bin", "cncop");
    // No CNCOP_HOME: the home is the directory above the executable's Bin/.
    const r = ok(await run(exe, ["init"], env), "cncop init");
    assert.match(r.stdout, /initialised/);
    for (const p of ["Config/cncop3.ini", "Config/backupjobs.db", "Logs", "Spool/Messages"]) {
      assert.ok(existsSync(join(dir, p)), `${p} created`);
    }
    ok(
      await run(
        exe,
        ["cncopjobs", "add", "--title", "docs", "--type", "CCS", "--source", tmp],
        env,
      ),
      "cncopjobs add",
    );
    const list = ok(await run(exe, ["cncopjobs", "list", "--json"], env), "cncopjobs list");
    const listed = JSON.parse(list.stdout).jobs as { title: string }[];
    assert.deepEqual(listed.map((j) => j.title), ["docs"]);
    const other = join(tempDir(), "elsewhere");
    ok(await run(exe, ["init", other], env), "cncop init DIR");
    assert.ok(existsSync(join(other, "Config", "backupjobs.db")));
    const again = ok(await run(exe, ["init", other], env), "cncop init DIR again");
    assert.match(again.stdout, /nothing to do/);
  });

  test("replacing the executable upgrades: the job database migrates on first start", async () => {
    // A home as the previous version left it: its executable, a v1 job database.
    const home = unpack(build);
    writeFileSync(join(home, "Bin", "cncop"), "#!/bin/sh\necho old version\n", { mode: 0o755 });
    writeV1JobsDb(join(home, "Config", "backupjobs.db"));
    // The upgrade: the new executable copied beside the old one and renamed over it.
    copyFileSync(join(app, "Bin", "cncop"), join(home, "Bin", "cncop.new"));
    renameSync(join(home, "Bin", "cncop.new"), join(home, "Bin", "cncop"));
    const r = ok(await run(join(home, "Bin", "cncopjobs"), ["list", "--json"], env), "list");
    const jobs = JSON.parse(r.stdout).jobs as { title: string; source: string }[];
    assert.deepEqual(jobs.map((j) => [j.title, j.source]), [["Legacy", "/old"]]);
    const db = new DatabaseSync(join(home, "Config", "backupjobs.db"), { readOnly: true });
    const v = db.prepare("PRAGMA user_version").get() as { user_version: number };
    const cols = db.prepare("PRAGMA table_info(jobs)").all() as { name: string }[];
    db.close();
    assert.equal(v.user_version, 2);
    assert.ok(cols.some((c) => c.name === "command_timeout"));
  });

  test("without a writable cache the addon is not loaded, says why, and programs still work", async () => {
    const file = join(tempDir(), "a-file");
    writeFileSync(file, "");
    const noCache = cleanEnv(pathDir, join(file, "tmp"), { CNCOP_CACHE_DIR: join(file, "c") });
    const r = ok(await run(join(app, "Bin", "cncop"), ["version"], noCache), "version");
    if (build.manifest.native !== null) {
      assert.match(
        r.stdout,
        /^native core: not loaded: cannot extract the embedded addon \(.*ENOTDIR/m,
      );
    }
    const home = unpack(build);
    ok(await run(join(home, "Bin", "cncopjobs"), ["list"], noCache), "cncopjobs list");
  });

  test("a zx script runs through the executable with $, fs, path, its arguments and import of zx", async () => {
    const script = join(tempDir(), "probe.mjs");
    writeFileSync(
      script,
      [
        'import { $ as zx$ } from "zx";', // resolves to the zx inside the executable
        "const out = await zx$`echo shell ${process.env.CNCOP_JOB_ID}`;",
        "if (out.stdout !== (await $`echo shell ${process.env.CNCOP_JOB_ID}`).stdout) {",
        "  throw new Error('the global $ differs');",
        "}",
        "await fs.writeJson(path.join(argv._[0], 'probe.json'), {",
        "  out: out.stdout.trim(), exec: path.basename(process.execPath), args: argv._,",
        "  flags: process.execArgv,",
        "});",
      ].join("\n"),
    );
    const out = tempDir();
    const r = await run(join(app, "Bin", "cncop"), ["zx", script, out], {
      ...env,
      CNCOP_JOB_ID: "7",
    });
    ok(r, "cncop zx");
    const probe = JSON.parse(readFileSync(join(out, "probe.json"), "utf8"));
    // The executable runs with the V8 flags it embeds (runtime_flags.ts), whatever NODE_OPTIONS.
    assert.deepEqual(probe, { out: "shell 7", exec: "cncop", args: [out], flags: [...NODE_FLAGS] });
  });

  test("building twice gives the same bundle, executable and archive", (t) => {
    // Other work may change the sources while this runs: compare two builds of one state.
    const key = inputsKey();
    const builds = [];
    if (key === build.key) builds.push(build);
    while (builds.length < 2) {
      const dist = join(tempDir("cncop-repro-"), "dist");
      runRelease(dist);
      builds.push(readRelease(dist));
    }
    if (inputsKey() !== key) {
      t.skip("the sources changed during the builds");
      return;
    }
    const [a, b] = builds as [ReturnType<typeof readRelease>, ReturnType<typeof readRelease>];
    assert.equal(a.manifest.bundle.sha256, b.manifest.bundle.sha256, "bundle");
    const same = a.manifest.executable.sha256 === b.manifest.executable.sha256;
    if (process.platform === "linux") {
      assert.ok(same, "executable");
      assert.equal(a.sha256, b.sha256, "archive");
    } else if (!same) {
      // macOS: the ad hoc signature is codesign's (docs/decisions/0031-release-archives.md).
      t.diagnostic(`executables differ on ${process.platform}; the bundles are identical`);
    }
  });

  describe("a CCS backup and restore against cncopd from the same archive", () => {
    let server: ChildProcess | undefined;
    after(() => {
      server?.kill("SIGTERM");
    });

    test("cncopagent runs a zx prerun (dump_database.mjs), nq and dq; cncoprestore gives it all back", async () => {
      const base = tempDir("cncop-ccs-");
      const serverHome = unpack(build);
      const data = join(base, "data");
      const add = ok(
        await run(
          join(serverHome, "Bin", "cncopd"),
          ["device", "add", "dev1", "--data", data],
          env,
        ),
        "cncopd device add",
      );
      const token = add.stdout.trim();
      server = spawn(
        join(serverHome, "Bin", "cncopd"),
        ["serve", "--listen", "127.0.0.1:0", "--data", data],
        { env, stdio: ["ignore", "pipe", "pipe"] },
      );
      let serverErr = "";
      server.stderr!.on("data", (d: Buffer) => (serverErr += d.toString()));
      const url = await new Promise<string>((resolve, reject) => {
        createInterface({ input: server!.stdout! }).on("line", (line) => {
          const m = /listening on (\S+)/.exec(line);
          if (m) resolve(m[1]!);
        });
        server!.once("exit", (c) => reject(new Error(`cncopd exited ${c}: ${serverErr}`)));
      });

      const home = unpack(build);
      writeFileSync(
        join(home, "Config", "cncop3.ini"),
        `[network]\nurl = ${url}\ntoken = ${token}\n`,
      );
      copyFileSync(
        join(repo, "scripts", "examples", "dump_database.mjs"),
        join(home, "Bin", "dump_database.mjs"),
      );
      const source = join(base, "source");
      mkdirSync(join(source, "docs", "deep"), { recursive: true });
      writeFileSync(join(source, "docs", "a.txt"), "alpha\n");
      writeFileSync(join(source, "docs", "deep", "b.bin"), Buffer.alloc(300_000, 7));
      const appDb = join(base, "app.db");
      const db = new DatabaseSync(appDb);
      db.exec("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)");
      db.exec("INSERT INTO orders (item) VALUES ('tea'), ('cake')");
      db.close();
      const dump = join(source, "dumps", "app.db");
      const bin = (p: string) => join(home, "Bin", p);
      ok(
        await run(bin("cncopjobs"), [
          "add",
          "--title",
          "docs",
          "--type",
          "CCS",
          "--source",
          source,
          "--prerun",
          `dump_database.mjs sqlite ${appDb} ${dump}`,
        ], env),
        "cncopjobs add",
      );
      const list = ok(await run(bin("cncopjobs"), ["list", "--json"], env), "list");
      const jobId = String(JSON.parse(list.stdout).jobs[0].id);

      const agent = await run(bin("cncopagent"), ["docs"], env);
      const logs = readdirSync(join(home, "Logs")).filter((n) => n.startsWith("CA-"));
      const caLog = logs.map((n) => readFileSync(join(home, "Logs", n), "utf8")).join("\n");
      assert.equal(agent.status, 0, `cncopagent: ${agent.stderr}\n${caLog}`);
      assert.match(caLog, /dump_database: .* \(1 tables, \d+ bytes\) for job docs/);
      assert.ok(existsSync(dump), "the prerun dumped the database into the source");

      const restored = join(base, "restored");
      ok(await run(bin("cncoprestore"), [jobId, "--to", restored], env), "cncoprestore");
      assert.deepEqual(treeDigest(restored), treeDigest(source));
      const back = new DatabaseSync(join(restored, "dumps", "app.db"), { readOnly: true });
      const rows = back.prepare("SELECT item FROM orders ORDER BY id").all();
      back.close();
      assert.deepEqual(rows.map((r) => (r as { item: string }).item), ["tea", "cake"]);

      // A second run sends the edited file as a delta (pack-update: the native core on both
      // sides) and the dump again; the restore follows.
      const big = Buffer.alloc(300_000, 7);
      big.write("edited in the middle", 150_000);
      writeFileSync(join(source, "docs", "deep", "b.bin"), big);
      const more = new DatabaseSync(appDb);
      more.exec("INSERT INTO orders (item) VALUES ('scone')");
      more.close();
      const second = await run(bin("cncopagent"), ["docs"], env);
      assert.equal(second.status, 0, `second cncopagent run: ${second.stderr}`);
      const again = join(base, "restored-again");
      ok(await run(bin("cncoprestore"), [jobId, "--to", again], env), "cncoprestore again");
      assert.deepEqual(treeDigest(again), treeDigest(source));
      assert.equal(serverErr, "", "cncopd wrote no errors");
    });
  });

  test("no run wrote into Bin/", () => {
    assert.deepEqual(snapshot(join(app, "Bin")), binBefore);
  });
});
