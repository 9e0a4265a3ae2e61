/**
 * @module The heartbeat loop of a parallel worker: renews the leases of the chunks it runs
 * and notices runs that ended (a missed cancel message) or chunks it lost.
 */
import { type Clock, systemClock } from "../async/clock.ts";
import { Loop } from "../async/loop.ts";
import type { Logger } from "../log.ts";
import type { Held, RunStore } from "./store.ts";

/** What the heartbeat needs from the processor. */
export interface HeartbeatHost {
  /** The leases held now, by refcode. */
  held(): Map<string, Held[]>;
  /** Stop these slots of a run (all of them when the run ended). */
  lost(refcode: string, slots: readonly string[] | "all"): void;
}

/** Renews leases every `intervalMs` until stopped. */
export class Heartbeat {
  #runs: RunStore;
  #host: HeartbeatHost;
  #log: Logger;
  #loop: Loop;
  #failing = false;

  /**
   * @param runs the run store
   * @param host the processor
   * @param intervalMs time between beats (a third of the shortest lease or less)
   * @param log where failures go
   * @param clock whose time the beats are on (default the wall clock)
   */
  constructor(
    runs: RunStore,
    host: HeartbeatHost,
    intervalMs: number,
    log: Logger,
    clock: Clock = systemClock,
  ) {
    this.#runs = runs;
    this.#host = host;
    this.#log = log;
    this.#loop = new Loop(() => this.beat(), { everyMs: intervalMs, clock });
  }

  /** Starts beating. */
  start(): void {
    this.#loop.start();
  }

  /** Stops beating; resolves once a beat in progress ends. */
  stop(): Promise<void> {
    return this.#loop.stop();
  }

  /** One beat: renews every held lease, stops what is no longer ours. */
  async beat(): Promise<void> {
    const held = this.#host.held();
    try {
      await Promise.all([...held].map(async ([refcode, slots]) => {
        const { status, lost } = await this.#runs.heartbeat(refcode, slots);
        if (status !== "in_progress") this.#host.lost(refcode, "all");
        else if (lost.length) this.#host.lost(refcode, lost);
      }));
      if (this.#failing) this.#log.info("heartbeat recovered");
      this.#failing = false;
    } catch (err) {
      // Leases run out while the store is unreachable; the chunks' results are then dropped
      // and the chunks rerun, so a failed beat is only worth one log line per outage.
      if (!this.#failing) this.#log.warn("heartbeat failed", { error: String(err) });
      this.#failing = true;
    }
  }
}
