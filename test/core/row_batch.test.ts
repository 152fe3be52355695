import assert from "node:assert/strict";
import { test } from "node:test";
import { DatabaseSync } from "node:sqlite";
import { RowBatch } from "../../src/core/row_batch.ts";

function table(): DatabaseSync {
  const db = new DatabaseSync(":memory:");
  db.exec("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)");
  return db;
}

test("RowBatch writes every row, full statements and the rest, the last of a key kept", () => {
  const db = table();
  const sqls: string[] = [];
  const put = new RowBatch(
    (sql) => {
      sqls.push(sql);
      return db.prepare(sql);
    },
    "INSERT OR REPLACE INTO t (k, v)",
    2,
    4,
  );
  for (let i = 0; i < 10; i++) put.add(`k${i % 7}`, i);
  assert.equal((db.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n, 7);
  put.flush();
  const rows = db.prepare("SELECT k, v FROM t ORDER BY k").all() as { k: string; v: number }[];
  assert.deepEqual(
    rows.map((r) => [r.k, r.v]),
    [["k0", 7], ["k1", 8], ["k2", 9], ["k3", 3], ["k4", 4], ["k5", 5], ["k6", 6]],
  );
  assert.equal(sqls.length, 2, "a statement of 4 rows and one of 1, each prepared once");
  put.flush(); // nothing left: a no-op
  db.close();
});

test("RowBatch: discard() forgets what was not written; a row of the wrong width throws", () => {
  const db = table();
  const put = new RowBatch((sql) => db.prepare(sql), "INSERT INTO t (k, v)", 2);
  put.add("a", 1);
  put.discard();
  put.flush();
  assert.equal((db.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n, 0);
  assert.throws(() => put.add("b"), /a row of 1 values for 2 columns/);
  db.close();
});
