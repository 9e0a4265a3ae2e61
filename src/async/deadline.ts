/**
 * @module Bounded waits: a promise raced against a timer, and what every stop path does while
 * it drains.
 */

/** The default rejection of {@link deadline}. */
export class DeadlineError extends Error {
  /** @param ms the bound that passed */
  constructor(readonly ms: number) {
    super(`Timed out after ${ms} ms`);
    this.name = "DeadlineError";
  }
}

/**
 * Settles as `work` does, or rejects once `ms` passed, whichever is first. The timer is cleared
 * either way; `work` itself goes on (the caller disposes of a late result if it must).
 *
 * @param work what to wait for
 * @param ms the bound
 * @param timeout makes the rejection (default a {@link DeadlineError})
 * @returns what `work` resolved to
 * @throws what `work` threw, or `timeout()` once the bound passed
 * @example
 * ```ts
 * const pong = await deadline(client.ping(), 2000, () => new Error("PING timed out"));
 * ```
 */
export function deadline<T>(
  work: Promise<T>,
  ms: number,
  timeout: () => Error = () => new DeadlineError(ms),
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(timeout()), Math.max(0, ms));
    work.then(resolve, reject).finally(() => clearTimeout(timer));
  });
}

/**
 * Waits until `work` settles (fulfilled or rejected) or the deadline passes, whichever is first.
 * Never throws.
 *
 * @param work what to wait for (absent = nothing to wait for)
 * @param at epoch ms
 * @returns true if the work settled in time
 * @example
 * ```ts
 * if (!(await settleBy(server.shutdown(), Date.now() + 5000))) log.warn("gave up waiting");
 * ```
 */
export function settleBy(work: Promise<unknown> | undefined, at: number): Promise<boolean> {
  if (!work) return Promise.resolve(true);
  return deadline(work.then(() => true, () => true), at - Date.now()).catch(() => false);
}
