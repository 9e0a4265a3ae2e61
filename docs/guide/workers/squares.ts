/**
 * @module Worker file of the `sum-squares` parallel task: one chunk, on a worker thread.
 */

/**
 * Sums n² over [from, to).
 *
 * @param chunk the half-open range
 * @param signal turns aborted when the run is cancelled
 * @returns the chunk's sum
 */
export default function sumSquares(
  { from, to }: { from: number; to: number },
  signal: { readonly aborted: boolean; throwIfAborted(): void },
): number {
  let sum = 0;
  for (let n = from; n < to; n++) {
    if ((n & 4095) === 0) signal.throwIfAborted();
    sum += n * n;
  }
  return sum;
}
