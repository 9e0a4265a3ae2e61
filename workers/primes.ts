/**
 * @module Tinypool worker of the `primes` parallel task: counts the primes in [from, to).
 */

/**
 * Counts primes in [from, to) by trial division over 6k±1, so the cost grows with the numbers
 * as CPU-bound work does (a sieve would finish π(10⁷) in milliseconds).
 *
 * @param chunk the half-open range
 * @param signal checked every 4096 numbers: a cancelled run stops here
 * @returns how many primes it holds
 */
export default function countPrimes(
  { from, to }: { from: number; to: number },
  signal?: { readonly aborted: boolean; throwIfAborted(): void },
): number {
  let count = 0;
  for (let n = Math.max(from, 2); n < to; n++) {
    if ((n & 4095) === 0) signal?.throwIfAborted();
    if (n < 4) count++;
    else if (n % 2 !== 0 && n % 3 !== 0) {
      let prime = true;
      for (let d = 5; d * d <= n; d += 6) {
        if (n % d === 0 || n % (d + 2) === 0) {
          prime = false;
          break;
        }
      }
      if (prime) count++;
    }
  }
  return count;
}
