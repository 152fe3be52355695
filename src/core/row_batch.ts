/**
 * Rows inserted many to a statement: a first backup writes a row per file into several
 * tables, and a statement per row costs about a quarter more than one per 64 rows.
 *
 * @module
 */
import type { SQLInputValue, StatementSync } from "node:sqlite";

/** Rows of one statement, unless told otherwise. */
export const ROWS_PER_STATEMENT = 64;

/**
 * Gathers rows for `head` (`INSERT ... INTO t (a, b, c)`) and writes them `rows` to a
 * statement; {@link flush} writes the rest. Rows are written in the order they were added,
 * so an `INSERT OR REPLACE` keeps the last of a path; flush before any other statement
 * that must see them.
 *
 * @example
 * ```ts
 * const put = new RowBatch((sql) => work.stmt(sql), "INSERT INTO t (a, b)", 2);
 * put.add(1, "x");
 * put.flush();
 * ```
 */
export class RowBatch {
  readonly #prepare: (sql: string) => StatementSync;
  readonly #head: string;
  readonly #columns: number;
  readonly #rows: number;
  readonly #pending: SQLInputValue[] = [];
  #one: StatementSync | undefined;
  #many: StatementSync | undefined;

  constructor(
    prepare: (sql: string) => StatementSync,
    head: string,
    columns: number,
    rows = ROWS_PER_STATEMENT,
  ) {
    this.#prepare = prepare;
    this.#head = head;
    this.#columns = columns;
    this.#rows = rows;
  }

  /** Adds a row of the head's columns, in their order. */
  add(...values: SQLInputValue[]): void {
    if (values.length !== this.#columns) {
      throw new Error(`a row of ${values.length} values for ${this.#columns} columns`);
    }
    this.#pending.push(...values);
    if (this.#pending.length === this.#rows * this.#columns) this.flush();
  }

  /** Writes the rows gathered so far. */
  flush(): void {
    const p = this.#pending;
    if (p.length === 0) return;
    const n = p.length / this.#columns;
    if (n === this.#rows) (this.#many ??= this.#statement(n)).run(...p);
    else {
      const one = this.#one ??= this.#statement(1);
      for (let i = 0; i < p.length; i += this.#columns) {
        one.run(...p.slice(i, i + this.#columns));
      }
    }
    p.length = 0;
  }

  /** Forgets the rows gathered and not written (their transaction is being rolled back). */
  discard(): void {
    this.#pending.length = 0;
  }

  #statement(rows: number): StatementSync {
    const row = `(${Array(this.#columns).fill("?").join(", ")})`;
    return this.#prepare(`${this.#head} VALUES ${Array(rows).fill(row).join(", ")}`);
  }
}
