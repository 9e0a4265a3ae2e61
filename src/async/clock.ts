/**
 * @module The one sense of time of the runtime's loops (schedules, task and parallel workers,
 * lease renewals, recovery): the wall clock, or a manual clock for tests, so DST, missed runs,
 * leases and long intervals are tested without waiting.
 */

/** Where a loop reads the time and waits. */
export interface Clock {
  /** The current wall-clock time, epoch ms. */
  now(): number;
  /**
   * Waits until `now() >= at`, or until `signal` aborts. Never rejects.
   *
   * @param at epoch ms
   * @param signal stops the wait early
   */
  sleepUntil(at: number, signal?: AbortSignal): Promise<void>;
}

/**
 * Longest single timer. Waits are cut into slices of at most this length and the wall clock is
 * read again after each, so a clock step (NTP, suspend) moves the tick instead of being ignored
 * for days, and no timer exceeds `setTimeout`'s 24.8-day limit.
 */
const MAX_SLICE_MS = 60_000;

/** The real clock: `Date.now()` and `setTimeout`, re-aimed at the tick after every wake-up. */
export const systemClock: Clock = {
  now: () => Date.now(),
  async sleepUntil(at: number, signal?: AbortSignal): Promise<void> {
    while (!signal?.aborted) {
      const left = at - Date.now();
      if (left <= 0) return;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(left, MAX_SLICE_MS));
        signal?.addEventListener("abort", done, { once: true });
      });
    }
  },
};

interface _Sleeper {
  at: number;
  resolve: () => void;
}

/**
 * A clock that moves only when told to. `advance` wakes each due sleeper in time order and lets
 * the woken code run (until it sleeps again) before moving on, so code driven by it sees every
 * wake-up at its own time. To fire a program's schedules with it, use `runSchedules` of the
 * testing entry: it waits until the scheduler's timers are armed and lets each run finish
 * before the next tick.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ManualClock } from "@svc/runtime/testing";
 *
 * const clock = new ManualClock("2025-03-09T06:00:00Z");
 * const woke: string[] = [];
 * const sleeper = (async () => {
 *   await clock.sleepUntil(Date.parse("2025-03-09T06:00:20Z"));
 *   woke.push(new Date(clock.now()).toISOString());
 * })();
 * await clock.advance(30_000); // wakes the sleeper at :20, then moves on to :30
 * await sleeper;
 * assert.deepEqual(woke, ["2025-03-09T06:00:20.000Z"]);
 * assert.equal(clock.now(), Date.parse("2025-03-09T06:00:30Z"));
 * ```
 */
export class ManualClock implements Clock {
  #now: number;
  #sleepers: _Sleeper[] = [];
  #settleMs: number;

  /**
   * Creates a clock standing at `start`.
   *
   * @param start the initial time (epoch ms, Date or ISO string)
   * @param settleMs how long `advance` waits, in real time, for woken code to sleep again
   */
  constructor(start: number | Date | string, settleMs = 2000) {
    this.#now = new Date(start).getTime();
    this.#settleMs = settleMs;
  }

  now(): number {
    return this.#now;
  }

  /** How many waits are pending. */
  get pending(): number {
    return this.#sleepers.length;
  }

  /** The earliest pending wake-up, or undefined. */
  get nextWakeUp(): number | undefined {
    return this.#sleepers.length ? Math.min(...this.#sleepers.map((s) => s.at)) : undefined;
  }

  sleepUntil(at: number, signal?: AbortSignal): Promise<void> {
    if (at <= this.#now || signal?.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const sleeper: _Sleeper = {
        at,
        resolve: () => {
          signal?.removeEventListener("abort", sleeper.resolve);
          this.#sleepers = this.#sleepers.filter((s) => s !== sleeper);
          resolve();
        },
      };
      this.#sleepers.push(sleeper);
      signal?.addEventListener("abort", sleeper.resolve, { once: true });
    });
  }

  /**
   * Moves time forward, waking sleepers one by one at their own time.
   *
   * @param ms how far
   */
  async advance(ms: number): Promise<void> {
    await this.advanceTo(this.#now + ms);
  }

  /**
   * Moves time forward to `target`, waking sleepers one by one at their own time.
   *
   * @param target epoch ms, Date or ISO string
   */
  async advanceTo(target: number | Date | string): Promise<void> {
    const end = new Date(target).getTime();
    for (;;) {
      const due = this.#sleepers.filter((s) => s.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.#now = Math.max(this.#now, due.at);
      const before = this.#sleepers.length;
      due.resolve();
      await this.#settle(before);
    }
    this.#now = Math.max(this.#now, end);
  }

  /**
   * Jumps to `target` without waking anyone in between one by one: every sleeper due by then
   * wakes at once, as after a suspended machine or a clock step.
   *
   * @param target epoch ms, Date or ISO string
   */
  async jumpTo(target: number | Date | string): Promise<void> {
    this.#now = Math.max(this.#now, new Date(target).getTime());
    const due = this.#sleepers.filter((s) => s.at <= this.#now);
    const before = this.#sleepers.length;
    for (const s of due) s.resolve();
    if (due.length) await this.#settle(before);
  }

  /** Lets woken code run until as many sleepers wait as before (it slept again), or time is up. */
  async #settle(before: number): Promise<void> {
    const end = Date.now() + this.#settleMs;
    await new Promise((r) => setTimeout(r, 0));
    while (this.#sleepers.length < before && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 1));
    }
  }
}
