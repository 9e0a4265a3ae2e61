/**
 * @module A loop with a start/stop pair: a pass, a wait on the clock, again, until stopped.
 * Every periodic part of the runtime (lease renewals, recovery, heartbeats, polling) is one.
 */
import { type Clock, systemClock } from "./clock.ts";

/** What a pass is told. */
export interface LoopPass {
  /** Aborts when the loop stops. */
  signal: AbortSignal;
  /** How long after its planned time the pass started, ms (an event-loop stall shows here). */
  late: number;
}

/** Options of {@link Loop}. */
export interface LoopOptions {
  /** The wait between the end of one pass and the start of the next, ms. */
  everyMs: number;
  /** Spread of each wait, as a fraction (0.2: ±20 %); default none. */
  jitter?: number;
  /** Whose time the waits are on (default the wall clock). */
  clock?: Clock;
  /** Run the first pass at once instead of after one wait. */
  immediate?: boolean;
  /** Where a pass's error goes (the loop goes on); default `console.error`. */
  onError?: (err: unknown) => void;
}

/**
 * Runs `pass` again and again with a wait between, until {@link Loop.stop}. A pass may return
 * how long to wait before the next one (`0`: at once), instead of `everyMs`; {@link Loop.wake}
 * ends the current wait, or the next one when called during a pass.
 *
 * @example
 * ```ts
 * const loop = new Loop(async () => void (await broker.reclaim()), { everyMs: 1000 });
 * loop.start();
 * await loop.stop();
 * ```
 */
export class Loop {
  #pass: (pass: LoopPass) => Promise<number | void> | number | void;
  #options: LoopOptions;
  #clock: Clock;
  #stop = new AbortController();
  #wait: AbortController | undefined;
  #woken = false;
  #done: Promise<void> | undefined;

  /**
   * @param pass one round of work; what it returns is the next wait (ms), if anything
   * @param options interval, jitter, clock
   */
  constructor(
    pass: (pass: LoopPass) => Promise<number | void> | number | void,
    options: LoopOptions,
  ) {
    this.#pass = pass;
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
  }

  /** Whether the loop was started and not stopped. */
  get running(): boolean {
    return this.#done !== undefined && !this.#stop.signal.aborted;
  }

  /** Starts the loop (once). */
  start(): void {
    if (this.#done || this.#stop.signal.aborted) return;
    this.#done = this.#run();
  }

  /** Ends the current wait at once, so the next pass runs now. */
  wake(): void {
    this.#woken = true;
    this.#wait?.abort();
  }

  /** Stops the loop: ends its wait, aborts its signal, and resolves once a pass in progress ended. */
  async stop(): Promise<void> {
    this.#stop.abort();
    this.#wait?.abort();
    await this.#done;
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    let next: number | void = this.#options.immediate ? 0 : undefined;
    while (!signal.aborted) {
      const at = this.#clock.now() + this.#waitMs(next);
      if (!this.#woken && at > this.#clock.now()) {
        this.#wait = new AbortController();
        await this.#clock.sleepUntil(at, AbortSignal.any([signal, this.#wait.signal]));
        this.#wait = undefined;
      }
      this.#woken = false;
      if (signal.aborted) break;
      try {
        next = await this.#pass({ signal, late: Math.max(0, this.#clock.now() - at) });
      } catch (err) {
        next = undefined;
        (this.#options.onError ?? console.error)(err);
      }
    }
  }

  #waitMs(next: number | void): number {
    if (typeof next === "number") return next;
    const { everyMs, jitter = 0 } = this.#options;
    return jitter ? Math.round(everyMs * (1 - jitter + 2 * jitter * Math.random())) : everyMs;
  }
}
