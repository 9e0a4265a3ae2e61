/**
 * @module The loop that takes manual-run requests (`POST /schedules/{name}/run`): each request
 * sits in one Redis list and is popped by exactly one scheduler replica, woken by pub/sub and
 * polling as a fallback.
 */
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
  #pollMs: number;
  #abort = new AbortController();
  #wake: () => void = () => {};
  #woken = false;
  #unsubscribe: (() => Promise<void>) | undefined;
  #loop: Promise<void> = Promise.resolve();

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
    this.#pollMs = deps.pollMs ?? MANUAL_POLL_MS;
  }

  /** Subscribes to wake-ups and starts taking requests. */
  async start(): Promise<void> {
    try {
      this.#unsubscribe = await this.#store.subscribeManual(() => {
        this.#woken = true;
        this.#wake();
      });
    } catch (err) {
      this.#log.warn("manual runs: no wake-ups, polling only", { error: err });
    }
    this.#loop = this.#run();
  }

  /** Stops taking requests. */
  async stop(): Promise<void> {
    this.#abort.abort();
    this.#wake();
    await this.#loop;
    await this.#unsubscribe?.().catch(() => {});
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      let request = null;
      try {
        request = await this.#store.takeManual();
      } catch (err) {
        this.#log.debug("manual runs: store unavailable", { error: err });
      }
      if (request && !signal.aborted) {
        const def = this.#schedules.get(request.name);
        if (!def) {
          this.#log.warn("manual run dropped: unknown schedule", { schedule: request.name });
          continue;
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
        continue;
      }
      if (this.#woken) {
        this.#woken = false;
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, this.#pollMs);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.#wake = done;
      });
      this.#woken = false;
    }
  }
}
