/**
 * @module The timer loop of one schedule on one replica: aim a timer at the next tick, claim
 * the tick, run it; catch up missed ticks by the schedule's policy.
 *
 * Claims are a mark per schedule ("every tick up to here is taken"), moved forward atomically:
 * a replica runs tick t only if it moved the mark from before t to t. So a tick runs at most
 * once whatever the number of replicas, their restarts or their clocks; and the ticks a
 * claim jumps over (the mark was older than the tick before t) are exactly the ticks no replica
 * claimed in time — the missed ones, which the claim's winner alone handles by the policy.
 */
import type { Logger } from "../log.ts";
import { backoff } from "../async/backoff.ts";
import type { Clock } from "../async/clock.ts";
import { delay } from "../async/delay.ts";
import type { Cron } from "./cron.ts";
import { MAX_CATCH_UP_RUNS, type ScheduleDefinition } from "./define.ts";
import type { SchedulerMetrics } from "./metrics.ts";
import type { Runs } from "./runs.ts";
import type { ScheduleStore } from "./store.ts";

/**
 * How long after its tick a replica is sure to have claimed it. A replica that starts right
 * after a tick waits this long before counting the ticks before its start as missed, so it
 * never takes for missed a tick that a live replica is claiming at that very moment.
 */
export const CLAIM_GRACE_MS = 1000;

/** Most ticks counted when looking for missed ones (bounds the work after a long outage). */
const _MAX_COUNTED = 100_000;

/** Retries of the start-up claim while the store is unreachable. */
const STARTUP_CLAIM_BACKOFF = { initialMs: 100, maxMs: 1000 };

/** Waits of a catch-up run for the run that holds the overlap lock. */
const CATCH_UP_BACKOFF = { initialMs: 20, maxMs: 1000 };

/** One schedule's loop on one replica. */
export class ScheduleLoop {
  #def: ScheduleDefinition;
  #cron: Cron;
  #runs: Runs;
  #store: ScheduleStore;
  #clock: Clock;
  #metrics: SchedulerMetrics;
  #log: Logger;
  #abort = new AbortController();
  #loop: Promise<void> = Promise.resolve();
  #catchUp: Promise<void> = Promise.resolve();
  #nextTick: number | null = null;

  /**
   * @param deps the schedule, its parsed cron, and the scheduler's parts
   */
  constructor(deps: {
    def: ScheduleDefinition;
    cron: Cron;
    runs: Runs;
    store: ScheduleStore;
    clock: Clock;
    metrics: SchedulerMetrics;
    log: Logger;
  }) {
    this.#def = deps.def;
    this.#cron = deps.cron;
    this.#runs = deps.runs;
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#metrics = deps.metrics;
    this.#log = deps.log.child({ schedule: deps.def.name });
  }

  /** The tick the timer is aimed at, or null. */
  get nextTick(): number | null {
    return this.#nextTick;
  }

  /**
   * Starts the timer loop; its first job is to claim the ticks before this start that no
   * replica claimed (the missed ones) and catch them up by the policy, in the background.
   */
  start(): Promise<void> {
    const now = this.#clock.now();
    const recent = this.#cron.between(now - CLAIM_GRACE_MS, now, { inclusive: true, keep: 1 });
    this.#loop = this.#run(now, recent.total ? recent.ticks[0] + CLAIM_GRACE_MS : now);
    return Promise.resolve();
  }

  /**
   * Stops aiming timers and starting catch-up runs; resolves when the loop has stopped (runs
   * in flight are the scheduler's to drain).
   */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  /** Resolves when the catch-up runs queued so far have ended. */
  async idle(): Promise<void> {
    let seen;
    do {
      seen = this.#catchUp;
      await seen;
    } while (seen !== this.#catchUp);
  }

  async #run(start: number, claimAt: number): Promise<void> {
    const signal = this.#abort.signal;
    const cursor = this.#cron.cursor(start);
    let tick = cursor.nextAfter(start);
    let startup: number | null = claimAt;
    let attempt = 0;
    while (!signal.aborted) {
      this.#nextTick = tick;
      // Aimed at the tick itself, from the wall clock, each time: lateness never accumulates.
      await this.#clock.sleepUntil(startup === null ? tick : Math.min(tick, startup), signal);
      if (signal.aborted) break;
      if (this.#clock.now() >= tick) {
        await this.#claimTick(tick);
        // Ticks that passed while this replica was busy are not aimed at: the next claim finds
        // them in its gap and the missed policy decides.
        tick = cursor.nextAfter(Math.max(tick, this.#clock.now() - 1));
      }
      // After the tick when both are due, so its run goes first and catch-up runs queue behind.
      if (startup !== null && this.#clock.now() >= startup) {
        if (await this.#claimStart(start, attempt++)) startup = null;
        else startup = this.#clock.now() + backoff(attempt, STARTUP_CLAIM_BACKOFF);
      }
    }
    this.#nextTick = null;
  }

  /** Claims and runs one tick; the winner handles the missed ticks before it. */
  async #claimTick(tick: number): Promise<void> {
    try {
      const started = await this.#runs.begin(this.#def, {
        tick,
        trigger: "schedule",
        claim: true,
      });
      if (started.outcome !== "lost" && started.previous !== null) {
        this.#missed(started.previous, tick, false);
      }
    } catch (err) {
      this.#log.warn("tick not claimed", {
        scheduled_at: new Date(tick).toISOString(),
        error: err,
      });
    }
  }

  /** Claims `(mark, upTo]`; false when the store could not be reached. */
  async #claimStart(upTo: number, attempt: number): Promise<boolean> {
    try {
      const { won, previous } = await this.#store.claim(this.#def.name, upTo);
      if (won && previous !== null) this.#missed(previous, upTo, true);
      return true;
    } catch (err) {
      if (attempt === 5) this.#log.warn("missed ticks not checked yet", { error: err });
      return false;
    }
  }

  /** Handles the missed ticks in `(previous, upTo)` (or `]`), which this replica now owns. */
  #missed(previous: number, upTo: number, inclusive: boolean): void {
    const def = this.#def;
    const from = Math.max(previous, this.#clock.now() - def.catchUpWindowMs);
    const keep = def.missed === "all" ? MAX_CATCH_UP_RUNS : def.missed === "latest" ? 1 : 0;
    const { ticks, total } = this.#cron.between(from, upTo, { inclusive, keep, max: _MAX_COUNTED });
    if (total === 0) return;
    this.#metrics.missed.inc({ schedule: def.name }, total - ticks.length);
    this.#log.info("missed ticks", {
      missed: total,
      policy: def.missed,
      catching_up: ticks.length,
      since: new Date(previous).toISOString(),
    });
    if (!ticks.length) return;
    // One after another: catch-up runs never overlap each other, whatever the overlap policy.
    this.#catchUp = this.#catchUp.then(async () => {
      for (const tick of ticks) {
        if (this.#abort.signal.aborted) {
          this.#log.info("catch-up stopped by shutdown", {
            left: ticks.length - ticks.indexOf(tick),
          });
          return;
        }
        for (let attempt = 0; !this.#abort.signal.aborted; attempt++) {
          try {
            const started = await this.#runs.begin(def, {
              tick,
              trigger: "catch-up",
              claim: false,
            });
            if (started.outcome !== "busy") {
              await started.done;
              break;
            }
          } catch (err) {
            this.#log.warn("catch-up run not started", {
              scheduled_at: new Date(tick).toISOString(),
              error: err,
            });
            if (attempt >= 5) break;
          }
          // Another run holds the overlap lock: wait for it (it ends, or its lease expires).
          await delay(backoff(attempt + 1, CATCH_UP_BACKOFF), { signal: this.#abort.signal });
        }
      }
    });
  }
}
