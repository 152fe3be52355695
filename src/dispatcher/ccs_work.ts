/**
 * What the dispatcher asks the CCS work database (`Spool/Work/work.db`) to decide whether
 * to start the dequeuer: a pack of this job session that is `ready`, or an enqueuer run of it
 * that peeks in full.
 *
 * Opened read-only and only once the file exists: the enqueuer creates and migrates it. When
 * it cannot be read, the answer is yes: a dequeuer started for nothing costs a process
 * start, one never started would leave packs unsent.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { DatabaseSync, type StatementSync } from "node:sqlite";

/** A read-only view of the work queue of one job session. */
export class SessionWork {
  #path: string;
  #job: number;
  #session: string;
  #db?: DatabaseSync;
  #stmts = new Map<string, StatementSync>();

  constructor(path: string, job: number, session: string) {
    this.#path = path;
    this.#job = job;
    this.#session = session;
  }

  /** Whether a pack of this job and session is ready (and no dequeuer claimed it yet). */
  hasReady(): boolean {
    // Being created by the enqueuer, busy, or unreadable: start the dequeuer rather than risk
    // never sending (it finds out itself what there is to do).
    return this.#exists(
      "SELECT 1 AS x FROM packs WHERE job = ? AND claimed_by IS NULL AND session = ? LIMIT 1",
      true,
    );
  }

  /**
   * Whether the enqueuer run of this job and session peeks in full (found a change since
   * its last run): the dequeuer is started then, its start overlapping the peek.
   */
  peeking(): boolean {
    // An older work.db (no column yet), being created, or busy: wait for ready packs.
    return this.#exists(
      "SELECT 1 AS x FROM runs WHERE job = ? AND session = ? AND peeking = 1",
      false,
    );
  }

  /** Whether `sql` (job, session) finds a row; `onError` when work.db cannot answer. */
  #exists(sql: string, onError: boolean): boolean {
    try {
      let stmt = this.#stmts.get(sql);
      if (!stmt) {
        if (!existsSync(this.#path)) return false;
        this.#db ??= new DatabaseSync(this.#path, { readOnly: true, timeout: 5000 });
        this.#stmts.set(sql, stmt = this.#db.prepare(sql));
      }
      return stmt.get(this.#job, this.#session) !== undefined;
    } catch {
      this.close();
      return onError;
    }
  }

  close(): void {
    this.#stmts.clear();
    try {
      this.#db?.close();
    } catch { /* already closed */ }
    this.#db = undefined;
  }
}
