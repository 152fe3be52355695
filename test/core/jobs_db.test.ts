import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { test } from "node:test";
import { JobNotFoundError, UsageError } from "../../src/core/errors.ts";
import { jobsSchemaVersion, openJobsDb } from "../../src/core/jobs_db.ts";
import { exportJobs, importJobs, readJobsFile } from "../../src/core/jobs_io.ts";
import { writeFileSync } from "node:fs";
import { runCli } from "../helpers/run_cli.ts";
import { tempDir, tempHome } from "../helpers/tmp.ts";
import { writeV1JobsDb } from "../helpers/jobs_v1.ts";

function freshDb() {
  return openJobsDb(join(tempDir(), "jobs.db"));
}

test("add() derives direction and fills defaults", () => {
  const db = freshDb();
  const ccs = db.add({ title: "Docs", type: "CCS", source: "/srv/docs" });
  const rsync = db.add({ title: "Nas pull", type: "RSYNC", source: "nas::data" });
  assert.equal(ccs.direction, "PUSH");
  assert.equal(rsync.direction, "PULL");
  assert.equal(ccs.deleteCollar, 1500);
  assert.equal(ccs.maxRetries, 3);
  assert.equal(ccs.retentionDays, 30);
  assert.equal(ccs.commandTimeout, 3600);
  assert.equal(ccs.enabled, true);
  assert.deepEqual(ccs.agentArgs, []);
  db.close();
});

test("find() addresses a job by id and by title in any case", () => {
  const db = freshDb();
  const j = db.add({ title: "Office Files", type: "CCS", source: "/srv" });
  assert.equal(db.find(j.id).title, "Office Files");
  assert.equal(db.find(String(j.id)).id, j.id);
  assert.equal(db.find("office files").id, j.id);
  assert.equal(db.find("OFFICE FILES").id, j.id);
  assert.throws(() => db.find("nope"), JobNotFoundError);
  assert.throws(() => db.find(99), JobNotFoundError);
  db.close();
});

test("titles are unique regardless of case, on add and on edit", () => {
  const db = freshDb();
  db.add({ title: "Docs", type: "CCS", source: "/a" });
  const other = db.add({ title: "Mail", type: "CCS", source: "/b" });
  assert.throws(() => db.add({ title: "DOCS", type: "CCS", source: "/c" }), /already exists/);
  assert.throws(() => db.edit(other.id, { title: "docs" }), /already exists/);
  // Renaming a job to another case of its own title is fine.
  assert.equal(db.edit("mail", { title: "MAIL" }).title, "MAIL");
  db.close();
});

test("edit() and remove() work by id and by title", () => {
  const db = freshDb();
  const j = db.add({ title: "Docs", type: "CCS", source: "/a", agentArgs: ["--skipdeletes"] });
  const e = db.edit("docs", { source: "/b", maxRetries: 5, type: "SFTP", enabled: false });
  assert.equal(e.source, "/b");
  assert.equal(e.maxRetries, 5);
  assert.equal(e.direction, "PULL");
  assert.equal(e.enabled, false);
  assert.deepEqual(e.agentArgs, ["--skipdeletes"]);
  assert.equal(db.remove(j.id).title, "Docs");
  assert.throws(() => db.remove("Docs"), JobNotFoundError);
  assert.equal(db.list().length, 0);
  db.close();
});

test("add() refuses invalid jobs", () => {
  const db = freshDb();
  assert.throws(() => db.add({ title: "123", type: "CCS", source: "/a" }), /only digits/);
  assert.throws(() => db.add({ title: " ", type: "CCS", source: "/a" }), UsageError);
  assert.throws(() => db.add({ title: "x", type: "CCS", source: "" }), /needs a source/);
  assert.throws(
    () => db.add({ title: "x", type: "XYZ" as "CCS", source: "/a" }),
    /unknown job type "XYZ"/,
  );
  assert.throws(
    () => db.add({ title: "x", type: "CCS", source: "/a", maxRetries: -1 }),
    /max retries/,
  );
  assert.equal(db.list().length, 0);
  db.close();
});

test("openJobsDb() migrates a database from the previous schema", () => {
  const path = join(tempDir(), "old.db");
  writeV1JobsDb(path);
  const db = openJobsDb(path);
  const j = db.find("legacy");
  assert.equal(j.commandTimeout, 3600);
  assert.equal(j.source, "/old");
  const v = (db.db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version;
  assert.equal(v, jobsSchemaVersion);
  db.close();
});

test("openJobsDb() refuses a database newer than this build", () => {
  const path = join(tempDir(), "new.db");
  const d = new DatabaseSync(path);
  d.exec(`PRAGMA user_version = ${jobsSchemaVersion + 1}`);
  d.close();
  assert.throws(() => openJobsDb(path), /newer than this cncop/);
});

test("export and import round-trip, all or nothing", () => {
  const dir = tempDir();
  const a = openJobsDb(join(dir, "a.db"));
  a.add({ title: "Docs", type: "CCS", source: "/a", include: ["**/*.doc"], settings: { x: 1 } });
  a.add({ title: "Nas", type: "RSYNC", source: "nas::d", agentArgs: ["--bwlimit=10"] });
  writeFileSync(join(dir, "jobs.json"), exportJobs(a.list()));
  const b = openJobsDb(join(dir, "b.db"));
  b.add({ title: "nas", type: "CCS", source: "/keep" });
  const recs = readJobsFile(join(dir, "jobs.json"));
  assert.throws(() => importJobs(b, recs, false), /already exists/);
  assert.equal(b.list().length, 1, "a refused import leaves nothing behind");
  const res = importJobs(b, recs, true);
  assert.equal(res.added.length, 1);
  assert.equal(res.updated.length, 1);
  assert.deepEqual(b.find("docs").include, ["**/*.doc"]);
  assert.deepEqual(b.find("docs").settings, { x: 1 });
  assert.equal(b.find("nas").type, "RSYNC");
  a.close();
  b.close();
});

test("cncopjobs CLI: add, show by title, edit by id, remove, errors", () => {
  const home = tempHome();
  const env = { CNCOP_HOME: home.home };
  let r = runCli([
    "cncopjobs",
    "add",
    "--title",
    "Docs",
    "--type",
    "ccs",
    "--source",
    "/srv/docs",
    "--agent-arg",
    "--skipdeletes",
    "--include",
    "*.txt",
  ], env);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /added job 1 "Docs" \(CCS, PUSH\)/);
  r = runCli(["cncopjobs", "add", "--title", "DOCS", "--type", "ccs", "--source", "/x"], env);
  assert.equal(r.status, 2);
  assert.equal(r.stderr.trim().split("\n").length, 1, "one line");
  assert.match(r.stderr, /^cncopjobs: a job titled "DOCS" already exists/);
  r = runCli(["cncopjobs", "edit", "1", "--exclude", "tmp/**", "--disable"], env);
  assert.equal(r.status, 0, r.stderr);
  r = runCli(["cncopjobs", "show", "docs", "--json"], env);
  const job = JSON.parse(r.stdout);
  assert.deepEqual(job.exclude, ["tmp/**"]);
  assert.deepEqual(job.include, ["*.txt"]);
  assert.deepEqual(job.agentArgs, ["--skipdeletes"]);
  assert.equal(job.enabled, false);
  r = runCli(["cncopjobs", "add", "--title", "X", "--type", "tape", "--source", "/x"], env);
  assert.equal(r.status, 2);
  assert.match(
    r.stderr,
    /unknown job type "tape" - known types: CCS, CIFS, FTP, FTPS, MSSQL, SFTP, RSYNC, WIMG/,
  );
  r = runCli(["cncopjobs", "remove", "Docs"], env);
  assert.equal(r.status, 0, r.stderr);
  r = runCli(["cncopjobs", "show", "1"], env);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /no job "1" - run 'cncopjobs list'/);
});
