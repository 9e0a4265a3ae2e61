/**
 * @module Callers waiting for a loop to catch up: each is answered by the first pass begun
 * after its call that finds nothing to do. What a loop's `idle()` is made of.
 */

/**
 * The callers of a loop's `idle()`. A pass calls {@link IdleWaiters.begin} as it starts and the
 * function it returns as it ends, saying whether it found nothing to do; the callers waiting
 * when it started are then answered, or wait for the next pass.
 *
 * @example
 * ```ts
 * const end = waiters.begin();
 * const found = await takeSome();
 * end(found === 0);
 * ```
 */
export class IdleWaiters {
  #waiting: (() => void)[] = [];

  /** Whether a caller waits (its loop should run the next pass at once). */
  get waiting(): boolean {
    return this.#waiting.length > 0;
  }

  /**
   * Waits for a pass begun after this call that finds nothing to do.
   *
   * @returns settles then (or at {@link IdleWaiters.releaseAll})
   */
  next(): Promise<void> {
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /**
   * Marks a pass's start: it answers for the callers waiting now.
   *
   * @returns call at the pass's end with whether it found nothing to do; if it did find work,
   *   those callers wait for a later pass
   */
  begin(): (caughtUp: boolean) => void {
    const asked = this.#waiting.splice(0);
    return (caughtUp) => {
      if (caughtUp) { for (const done of asked) done(); }
      else this.#waiting.unshift(...asked);
    };
  }

  /** Answers every caller (the loop stopped: no pass will come). */
  releaseAll(): void {
    for (const done of this.#waiting.splice(0)) done();
  }
}
