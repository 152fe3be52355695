/**
 * Items still being planned while the pack phase runs. A first backup (no saved listing, an
 * empty cloud) plans every file the walk lists as an ADD, batch by batch, and the pack phase
 * packs them as they come instead of waiting for the whole walk: the walk and the plan took
 * one core for most of a second while the other had nothing to do.
 *
 * @module
 */

/** The planner's side tells how far it got; the packer's side waits for more. */
export class PlanFeed {
  #planned = 0;
  #ended = false;
  #error: { err: unknown } | undefined;
  #waiters: (() => void)[] = [];

  /** Items planned so far. */
  get planned(): number {
    return this.#planned;
  }

  /** Whether planning is over: nothing more will come. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Throws the planner's error when planning failed. */
  check(): void {
    if (this.#error) throw this.#error.err;
  }

  /**
   * `n` more items are planned. Called inside the transaction that writes them: a waiter
   * resumes only after the synchronous code around it has committed.
   */
  add(n: number): void {
    this.#planned += n;
    this.#wake();
  }

  /** Planning is over; with `err`, it failed and the packer stops too. */
  end(err?: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    if (err !== undefined) this.#error = { err };
    this.#wake();
  }

  /**
   * Resolves once more items are planned or planning ended; rejects with the planner's
   * error when it failed.
   */
  wait(): Promise<void> {
    if (this.#error) return Promise.reject(this.#error.err);
    if (this.#ended) return Promise.resolve();
    return new Promise<void>((resolve) => this.#waiters.push(resolve)).then(() => {
      if (this.#error) throw this.#error.err;
    });
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const resolve of w) resolve();
  }
}
