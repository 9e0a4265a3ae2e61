/**
 * @module The scheduler's recoverer: finds runs whose replica died between claiming their tick
 * and finishing them (recorded `running`, lease expired) and runs them on this replica.
 */
import type { Logger } from "../log.ts";
import type { Clock } from "../async/clock.ts";
import type { ScheduleDefinition } from "./define.ts";
import type { Runs } from "./runs.ts";
import type { ScheduleStore } from "./store.ts";

/** Newest runs of each schedule looked at per pass. */
const SCANNED_RUNS = 20;
/** Takeovers one run may have before it is failed (an action that kills every replica). */
export const MAX_TAKEOVERS = 3;

/**
 * Every `leaseMs / 2`, takes over the orphaned runs of each schedule: at least once when a
 * replica dies (its action may have started), and still exactly once while it lives, since a
 * live replica renews its lease every third of it and a takeover needs an expired one.
 */
export class RunRecoverer {
  #store: ScheduleStore;
  #runs: Runs;
  #schedules: ReadonlyMap<string, ScheduleDefinition>;
  #clock: Clock;
  #log: Logger;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #pass: Promise<void> = Promise.resolve();
  #stopped = true;

  /**
   * @param deps the store, the runs, the schedules to watch, the clock, the logger
   */
  constructor(deps: {
    store: ScheduleStore;
    runs: Runs;
    schedules: ReadonlyMap<string, ScheduleDefinition>;
    clock: Clock;
    log: Logger;
  }) {
    this.#store = deps.store;
    this.#runs = deps.runs;
    this.#schedules = deps.schedules;
    this.#clock = deps.clock;
    this.#log = deps.log;
  }

  /** Starts the passes. */
  start(): Promise<void> {
    this.#stopped = false;
    this.#schedule();
    return Promise.resolve();
  }

  /** Stops the passes; resolves once the one going (if any) ends. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#pass;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#pass = this.recover().then(() => {}).finally(() => this.#schedule());
    }, Math.max(50, Math.floor(this.#runs.leaseMs / 2)));
  }

  /**
   * One pass over every schedule.
   *
   * @returns how many runs this replica took over
   */
  async recover(): Promise<number> {
    let taken = 0;
    for (const def of this.#schedules.values()) {
      if (this.#stopped) break;
      try {
        for (const run of await this.#store.orphans(def.name, SCANNED_RUNS)) {
          // A run this replica claimed is its own to run or lose (a stall here, not a death):
          // the other replicas take it over if this one died. Replica names are unique per
          // process (`rt.instanceId` by default).
          if (this.#runs.has(run.id) || run.replica === this.#runs.replica) continue;
          const now = this.#clock.now();
          const outcome = await this.#store.takeOver(
            def.name,
            run.id,
            this.#runs.replica,
            this.#runs.leaseMs,
            now,
            MAX_TAKEOVERS,
          );
          if (outcome === "failed") {
            this.#log.warn("run failed: its replicas kept stopping before it finished", {
              schedule: def.name,
              run: run.id,
            });
          }
          if (outcome !== "taken") continue;
          taken++;
          this.#runs.resume(def, run, now).catch(() => {});
        }
      } catch (err) {
        this.#log.warn("orphaned runs not checked", { schedule: def.name, error: err });
      }
    }
    return taken;
  }
}
