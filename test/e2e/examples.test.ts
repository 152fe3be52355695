/**
 * The example pre-run commands (scripts/examples/*.mjs), run the way cncopagent runs them on a
 * device: through the packaged executable's `zx` program, with a PATH holding no node and
 * HOME empty. The release archive is built once per source state (release_build.ts).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, test } from "node:test";
import {
  cleanEnv,
  cleanPath,
  releaseBuild,
  removeTemps,
  repo,
  tempDir,
  unpack,
} from "./release_build.ts";
import { type CliResult, runProcess } from "../helpers/run_cli.ts";

type Run = CliResult;

let exe: string;
let bin: string;
let pathDir: string;
let env: Record<string, string>;

/** Runs `cncop zx Bin/<example> args` as cncopagent would. */
function example(name: string, args: string[], extra: Record<string, string> = {}): Promise<Run> {
  return runProcess(exe, ["zx", join(bin, name), ...args], {
    env: { ...env, CNCOP_JOB_ID: "3", CNCOP_JOB_TITLE: "shop", ...extra },
    timeout: 120_000,
  });
}

const windows = process.platform === "win32";

before(async () => {
  if (windows) return; // the workflow's Windows smoke test covers the zip
  const build = await releaseBuild();
  const app = unpack(build);
  bin = join(app, "Bin");
  exe = join(bin, "cncop");
  for (const n of ["dump_database.mjs", "check_share.mjs"]) {
    copyFileSync(join(repo, "scripts", "examples", n), join(bin, n));
  }
  pathDir = cleanPath();
  env = cleanEnv(pathDir, tempDir());
});
after(removeTemps);

function shopDb(path: string): void {
  const db = new DatabaseSync(path);
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)");
  db.exec("INSERT INTO orders (item) VALUES ('tea'), ('cake')");
  db.close();
}

function items(path: string): string[] {
  const db = new DatabaseSync(path, { readOnly: true });
  const rows = db.prepare("SELECT item FROM orders ORDER BY id").all() as { item: string }[];
  db.close();
  return rows.map((r) => r.item);
}

describe("dump_database.mjs", { skip: windows && "Unix archive" }, () => {
  test("dumps a live SQLite database consistently: committed rows only", async () => {
    const dir = tempDir();
    const src = join(dir, "shop.db");
    shopDb(src);
    // A writer in the middle of a transaction while the dump runs.
    const writer = new DatabaseSync(src);
    writer.exec("BEGIN IMMEDIATE");
    writer.exec("INSERT INTO orders (item) VALUES ('uncommitted')");
    const dest = join(dir, "source", "dumps", "shop.db");
    const r = await example("dump_database.mjs", ["sqlite", src, dest]);
    writer.exec("ROLLBACK");
    writer.close();
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /dump_database: .*shop\.db -> .*\(1 tables, \d+ bytes\) for job shop/);
    assert.deepEqual(items(dest), ["tea", "cake"]);
    assert.deepEqual(readdirSync(dirname(dest)), ["shop.db"], "no temporary file left");
  });

  test("a failed dump exits 1 naming the cause and keeps the last good dump", async () => {
    const dir = tempDir();
    const src = join(dir, "shop.db");
    shopDb(src);
    const dest = join(dir, "dumps", "shop.db");
    assert.equal((await example("dump_database.mjs", ["sqlite", src, dest])).status, 0);
    const good = readFileSync(dest);
    const gone = await example("dump_database.mjs", ["sqlite", join(dir, "nope.db"), dest]);
    assert.equal(gone.status, 1);
    assert.match(gone.stderr, /^dump_database: cannot dump .*nope\.db: no such file$/m);
    writeFileSync(join(dir, "junk.db"), "this is not a database, just text ".repeat(200));
    const junk = await example("dump_database.mjs", ["sqlite", join(dir, "junk.db"), dest]);
    assert.equal(junk.status, 1);
    assert.match(junk.stderr, /^dump_database: cannot dump .*junk\.db: /m);
    assert.deepEqual(readFileSync(dest), good);
    assert.deepEqual(readdirSync(dirname(dest)), ["shop.db"]);
    const usage = await example("dump_database.mjs", ["mysql", src, dest]);
    assert.equal(usage.status, 1);
    assert.match(usage.stderr, /usage: dump_database\.mjs sqlite SRC DEST \| postgres URL DEST/);
  });

  test("a PostgreSQL dump that cannot connect fails without showing the password", async () => {
    const dir = tempDir();
    const dest = join(dir, "db.pgdump");
    const url = "postgresql://backup:s3cret@127.0.0.1:1/shop";
    const r = await example("dump_database.mjs", ["postgres", url, dest]);
    assert.equal(r.status, 1);
    assert.doesNotMatch(r.stderr + r.stdout, /s3cret/);
    assert.match(r.stderr, /cannot dump postgresql:\/\/backup:\*\*\*@127\.0\.0\.1:1\/shop: /);
    assert.equal(existsSync(dest), false);
    assert.deepEqual(readdirSync(dir), []);
  });

  const initdb = spawnSync("sh", ["-c", "command -v initdb"], { encoding: "utf8" }).stdout.trim();
  const asRoot = process.getuid?.() === 0;
  const pgUser = asRoot
    ? spawnSync("id", ["-u", "postgres"], { encoding: "utf8" }).status === 0
    : true;
  test(
    "dumps a real PostgreSQL database with pg_dump",
    {
      skip: (initdb === "" || !pgUser) &&
        "needs initdb, pg_ctl and pg_dump (and a postgres user as root)",
    },
    async () => {
      const pgBin = dirname(realpathSync(initdb));
      const base = tempDir("cncop-pg-");
      chmodSync(base, 0o755);
      const data = join(base, "data");
      const sock = join(base, "sock");
      mkdirSync(sock);
      const asPg = (cmd: string, args: string[]) => {
        const r = asRoot
          ? spawnSync("runuser", ["-u", "postgres", "--", join(pgBin, cmd), ...args], {
            encoding: "utf8",
          })
          : spawnSync(join(pgBin, cmd), args, { encoding: "utf8" });
        assert.equal(r.status, 0, `${cmd}: ${r.stderr}`);
      };
      if (asRoot) {
        // initdb and postgres refuse to run as root.
        mkdirSync(data);
        chownSync(data, ...ids("postgres"));
        chownSync(sock, ...ids("postgres"));
      }
      const port = String(40000 + (process.pid % 20000));
      asPg("initdb", ["-D", data, "-A", "trust", "-U", "backup"]);
      asPg("pg_ctl", [
        "-D",
        data,
        "-o",
        `-k ${sock} -c listen_addresses='' -p ${port}`,
        "-l",
        join(sock, "log"),
        "-w",
        "start",
      ]);
      try {
        const psql = spawnSync(
          join(pgBin, "psql"),
          [
            "-h",
            sock,
            "-p",
            port,
            "-U",
            "backup",
            "-d",
            "postgres",
            "-c",
            [
              "CREATE TABLE orders (id serial PRIMARY KEY, item text)",
              "INSERT INTO orders (item) VALUES ('tea'), ('cake')",
            ].join("; "),
          ],
          { encoding: "utf8" },
        );
        assert.equal(psql.status, 0, psql.stderr);
        // The real pg_dump (not Debian's perl wrapper) on the clean PATH.
        const path = join(tempDir(), "bin");
        mkdirSync(path);
        symlinkSync(join(pgBin, "pg_dump"), join(path, "pg_dump"));
        for (const t of ["bash", "sh"]) symlinkSync(join(pathDir, t), join(path, t));
        const dest = join(base, "out", "shop.pgdump");
        const url = `postgresql://backup@/postgres?host=${encodeURIComponent(sock)}&port=${port}`;
        const r = await example("dump_database.mjs", ["postgres", url, dest], { PATH: path });
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, /dump_database: postgresql:\/\/backup@.* -> .*shop\.pgdump/);
        const list = spawnSync(join(pgBin, "pg_restore"), ["--list", dest], { encoding: "utf8" });
        assert.equal(list.status, 0, list.stderr);
        assert.match(list.stdout, /TABLE public orders backup/);
        const sql = spawnSync(join(pgBin, "pg_restore"), ["--data-only", "-f", "-", dest], {
          encoding: "utf8",
        });
        assert.match(sql.stdout, /\ttea\n.*\tcake\n/s);
      } finally {
        asPg("pg_ctl", ["-D", data, "-m", "immediate", "stop"]);
      }
    },
  );
});

function ids(user: string): [number, number] {
  const uid = Number(spawnSync("id", ["-u", user], { encoding: "utf8" }).stdout.trim());
  const gid = Number(spawnSync("id", ["-g", user], { encoding: "utf8" }).stdout.trim());
  return [uid, gid];
}

describe("check_share.mjs", { skip: windows && "Unix archive" }, () => {
  test("passes on a writable directory with its marker and enough free space", async () => {
    const share = tempDir();
    writeFileSync(join(share, ".cncop-share"), "");
    const r = await example("check_share.mjs", [
      share,
      "--marker",
      ".cncop-share",
      "--min-free",
      "1M",
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /check_share: .* is ready \(.* free\) for job shop/);
    assert.deepEqual(readdirSync(share), [".cncop-share"], "the write probe is removed");
  });

  test("fails, naming the check, when the share is not what it should be", async () => {
    const share = tempDir();
    const cases: [string[], RegExp][] = [
      [
        [share, "--marker", ".cncop-share"],
        /has no \.cncop-share: the share is not the one expected/,
      ],
      [[share, "--min-free", "1000000T"], /free, less than/],
      [[share, "--require-mount"], /is not mounted/],
      [[share, "--mount"], /is not mounted and 'mount .*' failed|still not a mount point/],
      [[join(share, "missing")], /does not exist/],
      [[share, "--min-free", "lots"], /--min-free must be a size like 500M or 5G/],
    ];
    for (const [args, message] of cases) {
      const r = await example("check_share.mjs", args);
      assert.equal(r.status, 1, `${args.join(" ")}: ${r.stdout}`);
      assert.match(r.stderr, message, args.join(" "));
    }
  });

  test(
    "--require-mount passes on a mount point",
    { skip: !existsSync("/dev/shm") && "no /dev/shm" },
    async () => {
      const r = await example("check_share.mjs", ["/dev/shm", "--require-mount", "--read-only"]);
      assert.equal(r.status, 0, r.stderr);
    },
  );
});
