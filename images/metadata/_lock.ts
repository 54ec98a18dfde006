/**
 * Internal to images/metadata: a readers-writer lock between the operations
 * that change the backing stores (shared) and garbage collection's sweep
 * (exclusive), so a collection never deletes a blob or snapshot that a
 * writer has created but not yet recorded.
 *
 * @module
 */

/** An async readers-writer lock; writers wait for readers and take priority over new ones. */
export class RwLock {
  #readers = 0;
  #writer = false;
  #queue: Array<{ exclusive: boolean; resolve: () => void }> = [];

  /** Runs `fn` while holding the lock shared. */
  async shared<T>(fn: () => Promise<T>): Promise<T> {
    await this.#acquire(false);
    try {
      return await fn();
    } finally {
      this.#readers--;
      this.#wake();
    }
  }

  /** Runs `fn` while holding the lock exclusively. */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    await this.#acquire(true);
    try {
      return await fn();
    } finally {
      this.#writer = false;
      this.#wake();
    }
  }

  #acquire(exclusive: boolean): Promise<void> {
    if (!this.#writer && this.#queue.length === 0 && (exclusive ? this.#readers === 0 : true)) {
      if (exclusive) this.#writer = true;
      else this.#readers++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#queue.push({ exclusive, resolve }));
  }

  #wake(): void {
    while (this.#queue.length > 0 && !this.#writer) {
      const next = this.#queue[0]!;
      if (next.exclusive) {
        if (this.#readers > 0) return;
        this.#queue.shift();
        this.#writer = true;
        next.resolve();
        return;
      }
      this.#queue.shift();
      this.#readers++;
      next.resolve();
    }
  }
}
