/**
 * @module The one retry-delay formula: exponential, capped, jittered.
 */

/** How the delays grow. */
export interface BackoffOptions {
  /** The first delay, ms. */
  initialMs: number;
  /** The cap before jitter, ms. */
  maxMs: number;
  /** Spread around the delay, as a fraction (default 0.2: ±20 %). */
  jitter?: number;
  /** Source of randomness in [0, 1) (tests). */
  random?: () => number;
}

/**
 * The delay before retry `attempt`: `initialMs · 2^(attempt-1)`, capped at `maxMs`, then spread
 * ±`jitter` so clients that failed together do not retry together.
 *
 * @param attempt 1 for the first retry (values below 1 count as 1)
 * @param options the first delay, the cap, the spread
 * @returns milliseconds, rounded
 * @example
 * ```ts
 * await delay(backoff(attempt, { initialMs: 50, maxMs: 2000 }), { signal });
 * ```
 */
export function backoff(attempt: number, options: BackoffOptions): number {
  const { initialMs, maxMs, jitter = 0.2, random = Math.random } = options;
  // The exponent is capped so a long outage never overflows to Infinity.
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(0, attempt - 1), 30));
  return Math.round(base * (1 - jitter + 2 * jitter * random()));
}
