/**
 * @module The loop that takes manual-run requests (`POST /schedules/{name}/run`): each request
 * sits in one Redis list and is popped by exactly one scheduler replica, woken by pub/sub and
 * polling as a fallback.
 */
import { IdleWaiters } from "../async/idle.ts";
import { Loop } from "../async/loop.ts";
import type { Logger } from "../log.ts";
import type { ScheduleDefinition } from "./define.ts";
import type { Runs } from "./runs.ts";
import type { ScheduleStore } from "./store.ts";

/** Polling interval when no wake-up arrives (pub/sub messages are lost while disconnected). */
export const MANUAL_POLL_MS = 1000;

/** Takes manual runs off the queue and starts them. */
export class ManualRuns {
  #store: ScheduleStore;
  #runs: Runs;
  #schedules: ReadonlyMap<string, ScheduleDefinition>;
  #log: Logger;
  #unsubscribe: (() => Promise<void>) | undefined;
  #loop: Loop;
  /** Callers of `idle()` waiting for a pass that finds no request. */
  #idle = new IdleWaiters();

  /**
   * @param deps the store, the runs, the schedules by name, a logger, the polling interval
   */
  constructor(deps: {
    store: ScheduleStore;
    runs: Runs;
    schedules: ReadonlyMap<string, ScheduleDefinition>;
    log: Logger;
    pollMs?: number;
  }) {
    this.#store = deps.store;
    this.#runs = deps.runs;
    this.#schedules = deps.schedules;
    this.#log = deps.log;
    this.#loop = new Loop(
      ({ signal }) => this.#take(signal),
      { everyMs: deps.pollMs ?? MANUAL_POLL_MS, immediate: true },
    );
  }

  /** Subscribes to wake-ups and starts taking requests. */
  async start(): Promise<void> {
    try {
      this.#unsubscribe = await this.#store.subscribeManual(() => this.#loop.wake());
    } catch (err) {
      this.#log.warn("manual runs: no wake-ups, polling only", { error: err });
    }
    this.#loop.start();
  }

  /** Stops taking requests. */
  async stop(): Promise<void> {
    await this.#loop.stop();
    this.#idle.releaseAll();
    await this.#unsubscribe?.().catch(() => {});
  }

  /**
   * Settles after a pass begun after this call found no request to take (or the store did not
   * answer): the requests queued before the call are taken, their runs begun. It wakes the loop
   * for that pass, so it does not wait for a wake-up or the poll.
   *
   * @returns settles when caught up (at once when stopped)
   */
  idle(): Promise<void> {
    if (!this.#loop.running) return Promise.resolve();
    const caughtUp = this.#idle.next();
    this.#loop.wake();
    return caughtUp;
  }

  /** Takes one request and starts its run; 0 (take the next at once) when there was one. */
  async #take(signal: AbortSignal): Promise<number | void> {
    const end = this.#idle.begin();
    let request = null;
    try {
      request = await this.#store.takeManual();
    } catch (err) {
      this.#log.debug("manual runs: store unavailable", { error: err });
    }
    // With a request, the next pass (at once) may find the queue empty.
    end(!request || signal.aborted);
    if (!request || signal.aborted) return;
    const def = this.#schedules.get(request.name);
    if (!def) {
      this.#log.warn("manual run dropped: unknown schedule", { schedule: request.name });
      return 0;
    }
    try {
      await this.#runs.begin(def, {
        tick: request.at,
        trigger: "manual",
        claim: false,
        id: request.id,
      });
    } catch (err) {
      this.#log.error("manual run not started", { schedule: def.name, error: err });
    }
    return 0;
  }
}
