/**
 * @module Waiting for work with a deadline: what every stop path does while it drains.
 */

/**
 * Waits until `work` settles (fulfilled or rejected) or the deadline passes, whichever is first.
 * Never throws.
 *
 * @param work what to wait for (absent = nothing to wait for)
 * @param deadline epoch ms
 * @returns true if the work settled in time
 * @example
 * ```ts
 * if (!(await settleBy(server.shutdown(), Date.now() + 5000))) log.warn("gave up waiting");
 * ```
 */
export async function settleBy(
  work: Promise<unknown> | undefined,
  deadline: number,
): Promise<boolean> {
  if (!work) return true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      work.then(() => true, () => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()));
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
