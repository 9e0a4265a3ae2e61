/**
 * @module An abortable wait on a clock: every retry pause and idle wait of the runtime.
 */
import { type Clock, systemClock } from "./clock.ts";

/** Options of {@link delay}. */
export interface DelayOptions {
  /** Ends the wait early. */
  signal?: AbortSignal;
  /** Whose time passes (default the wall clock). */
  clock?: Clock;
}

/**
 * Waits `ms`, or less when `signal` aborts. Never rejects.
 *
 * @param ms how long (≤ 0: returns at once)
 * @param options the abort signal and the clock
 * @returns true when the time passed, false when the wait was cut short
 * @example
 * ```ts
 * if (!(await delay(backoff(attempt), { signal }))) return; // stopping
 * ```
 */
export async function delay(ms: number, options: DelayOptions = {}): Promise<boolean> {
  const { signal, clock = systemClock } = options;
  if (signal?.aborted) return false;
  await clock.sleepUntil(clock.now() + ms, signal);
  return !signal?.aborted;
}
