/**
 * @module The recoverer: takes back tasks whose worker stopped renewing its lease (a crash, a
 * kill -9, a lost network), so another worker runs them again (attempt + 1).
 */
import type { Clock } from "../async/clock.ts";
import { Loop } from "../async/loop.ts";
import type { Runtime, Service } from "../runtime.ts";
import type { Logger } from "../log.ts";
import { taskKeys } from "./keys.ts";
import { TASKS } from "./define.ts";
import { TaskBroker } from "./broker.ts";
import { type TaskMetrics, taskMetrics } from "./metrics.ts";

/** Default time between passes (each pass is one cheap script call per shard). */
export const RECOVER_EVERY_MS = 1_000;

/** Options of {@link Recoverer}. */
export interface RecovererOptions {
  /** Time between passes; default 1 s, spread ±20 %. */
  intervalMs?: number;
  /** Whose time the passes are on (default the wall clock). */
  clock?: Clock;
}

/**
 * Reclaims expired leases every second or so.
 *
 * A pass that starts late because the event loop stalled is skipped: the stall also delayed the
 * lease renewals of this process (on the embedded store they share the loop), and those run
 * first once the loop is free; reclaiming before them would take back live tasks.
 */
export class Recoverer implements Service {
  readonly name = "task-recoverer";
  #broker: TaskBroker;
  #metrics: TaskMetrics;
  #log: Logger;
  #loop: Loop;
  #failing = false;
  #types: string[];

  /**
   * @param rt the runtime
   * @param options interval
   */
  constructor(rt: Runtime, options: RecovererOptions = {}) {
    this.#broker = new TaskBroker(rt.store, taskKeys(rt.config.keyPrefix));
    this.#types = rt.system.all(TASKS).map((def) => def.name);
    this.#metrics = taskMetrics(rt);
    this.#log = rt.log.child({ component: "task-recoverer" });
    const everyMs = options.intervalMs ?? RECOVER_EVERY_MS;
    this.#loop = new Loop(async ({ late }) => {
      if (late > everyMs / 2) {
        this.#log.debug("recovery pass skipped after an event-loop stall", { late_ms: late });
      } else await this.recover();
    }, { everyMs, jitter: 0.2, clock: options.clock });
  }

  start(): Promise<void> {
    this.#loop.start();
    return Promise.resolve();
  }

  /**
   * Runs one pass.
   *
   * @returns how many tasks were taken back
   */
  async recover(): Promise<number> {
    try {
      const reclaimed = await this.#broker.reclaim(this.#types);
      this.#failing = false;
      for (const [name, status] of reclaimed) {
        const type = this.#metrics.label(name);
        this.#metrics.reclaims.child(type).inc();
        this.#metrics.transitions.child(type, status).inc();
      }
      if (reclaimed.length) {
        this.#log.warn("tasks taken back from workers whose lease expired", {
          count: reclaimed.length,
        });
      }
      return reclaimed.length;
    } catch (err) {
      if (!this.#failing) this.#log.warn("recovery pass failed", { error: err });
      this.#failing = true;
      return 0;
    }
  }

  stop(): Promise<void> {
    return this.#loop.stop();
  }
}
