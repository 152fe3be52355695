// Pre-run command: dump a database into the job's source tree, so the backup holds a
// consistent copy instead of live database files.
//
// Copy to Bin/ and set it as the job's prerun:
//   cncopjobs edit docs --prerun "dump_database.mjs sqlite /srv/app/app.db /data/dumps/app.db"
//   cncopjobs edit docs --prerun "dump_database.mjs postgres postgresql://backup@db/app /data/dumps/app.pgdump"
//
//   sqlite SRC DEST     a consistent copy made by SQLite itself (VACUUM INTO, through the
//                       SQLite built into cncop: no sqlite3 needed), checked with
//                       PRAGMA integrity_check
//   postgres URL DEST   pg_dump --format=custom (pg_dump on PATH; the password from
//                       PGPASSWORD or ~/.pgpass, never on the command line)
//
// The dump is written beside DEST and renamed over it only when complete, so a failed dump
// never replaces the last good one. Exit status 0 when DEST holds a fresh dump; anything else
// fails the prerun, and cncopagent does not run the job (the last good dump stays backed up).
//
// Runs through the cncop executable (`cncop zx`), which provides zx's globals ($, fs, path,
// argv, ...) and the job's environment (CNCOP_JOB_ID, CNCOP_JOB_TITLE, CNCOP_HOME, ...).
import { DatabaseSync } from "node:sqlite";

const [kind, source, dest] = argv._.map(String);
const job = process.env.CNCOP_JOB_TITLE ? ` for job ${process.env.CNCOP_JOB_TITLE}` : "";

function fail(message) {
  console.error(`dump_database: ${message}`);
  process.exit(1);
}

if (!["sqlite", "postgres"].includes(kind) || !source || !dest) {
  fail("usage: dump_database.mjs sqlite SRC DEST | postgres URL DEST");
}

/** `source` as it may be shown: a password in a connection URL is masked. */
function shown(source) {
  try {
    const u = new URL(source);
    if (u.password !== "") u.password = "***";
    return u.href;
  } catch {
    return source;
  }
}

const target = path.resolve(dest);
const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.tmp`);
await fs.mkdir(path.dirname(target), { recursive: true });

try {
  if (kind === "sqlite") {
    if (!(await fs.pathExists(source))) throw new Error("no such file");
    const src = new DatabaseSync(source, { readOnly: true });
    try {
      src.prepare("VACUUM INTO ?").run(tmp);
    } finally {
      src.close();
    }
    const check = new DatabaseSync(tmp, { readOnly: true });
    const result = check.prepare("PRAGMA integrity_check").get();
    const tables = check.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table'")
      .get();
    check.close();
    if (result?.integrity_check !== "ok") throw new Error("the dump fails its integrity check");
    await fs.rename(tmp, target);
    const { size } = await fs.stat(target);
    console.log(`dump_database: ${source} -> ${target} (${tables.n} tables, ${size} bytes)${job}`);
  } else {
    await $`pg_dump --format=custom --no-password --file=${tmp} ${source}`.quiet();
    await fs.rename(tmp, target);
    const { size } = await fs.stat(target);
    console.log(`dump_database: ${shown(source)} -> ${target} (${size} bytes)${job}`);
  }
} catch (err) {
  await fs.rm(tmp, { force: true });
  const detail = err?.stderr?.trim() || err?.message || String(err);
  fail(`cannot dump ${shown(source)}: ${detail.split("\n")[0]}`);
}
