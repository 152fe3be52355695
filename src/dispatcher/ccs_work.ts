/**
 * What the dispatcher asks the CCS work database (`Spool/Work/work.db`) to decide whether
 * the dequeuer has anything to do: a pack of this job session that is `ready`.
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
  #ready?: StatementSync;
  #peeking?: StatementSync;

  constructor(path: string, job: number, session: string) {
    this.#path = path;
    this.#job = job;
    this.#session = session;
  }

  /** Whether an item of this job and session waits in state `ready`. */
  hasReady(): boolean {
    try {
      if (!this.#ready) {
        if (!existsSync(this.#path)) return false;
        this.#db ??= new DatabaseSync(this.#path, { readOnly: true, timeout: 5000 });
        this.#ready = this.#db.prepare(
          "SELECT 1 AS x FROM items WHERE job = ? AND state = 'ready' AND session = ? LIMIT 1",
        );
      }
      return this.#ready.get(this.#job, this.#session) !== undefined;
    } catch {
      // Being created by the enqueuer, busy, or unreadable: start the dequeuer rather than
      // risk never sending (it finds out itself what there is to do).
      this.close();
      return true;
    }
  }

  /**
   * Whether the enqueuer run of this job and session peeks in full (found a change since
   * its last run): the dequeuer is started then, its start overlapping the peek.
   */
  peeking(): boolean {
    try {
      if (!this.#peeking) {
        if (!existsSync(this.#path)) return false;
        this.#db ??= new DatabaseSync(this.#path, { readOnly: true, timeout: 5000 });
        this.#peeking = this.#db.prepare(
          "SELECT 1 AS x FROM runs WHERE session = ? AND job = ? AND peeking = 1",
        );
      }
      return this.#peeking.get(this.#session, this.#job) !== undefined;
    } catch {
      // An older work.db (no column yet), being created, or busy: wait for ready packs.
      this.close();
      return false;
    }
  }

  close(): void {
    this.#peeking = undefined;
    this.#ready = undefined;
    try {
      this.#db?.close();
    } catch { /* already closed */ }
    this.#db = undefined;
  }
}
