/**
 * @module The `scheduler` role's service: one timer loop per enabled schedule, the manual-run
 * loop, and the runs they start.
 */
import type { Runtime, Service } from "../runtime.ts";
import { enqueueTask } from "../tasks/client.ts";
import { type Clock, systemClock } from "../async/clock.ts";
import type { ScheduleDefinition } from "./define.ts";
import { ScheduleLoop } from "./loop.ts";
import { ManualRuns } from "./manual.ts";
import { schedulerMetrics } from "./metrics.ts";
import { type ResolvedSchedule, validateSchedules } from "./overrides.ts";
import { type EnqueueFn, type RunFaults, Runs } from "./runs.ts";
import { RunRecoverer } from "./recoverer.ts";
import { ScheduleStore } from "./store.ts";

/** How long a run's lease lasts without renewal (renewed every third of it while it runs). */
export const RUN_LEASE_MS = 30_000;

/** Options, mostly for tests. */
export interface SchedulerOptions {
  /** Where time comes from; the wall clock by default. */
  clock?: Clock;
  /** Run lease; {@link RUN_LEASE_MS} by default. */
  leaseMs?: number;
  /** Manual-run polling interval. */
  manualPollMs?: number;
  /** This replica's name in run records; `rt.instanceId` by default. */
  replica?: string;
  /** How `enqueue` actions reach the async-task engine (`enqueueTask` by default). */
  enqueue?: EnqueueFn;
  /** Fault injection (tests): e.g. die between claiming a tick and running it. */
  faults?: RunFaults;
}

const _enqueueTask: EnqueueFn = async (rt, type, input, options) =>
  (await enqueueTask(rt, type, input, options)).refcode;

/**
 * Runs every enabled schedule of `rt.system`, each tick exactly once across replicas.
 *
 * Stop order: timers first (no new tick starts), then the manual-run loop and the recoverer
 * (no run is taken over), then the runs in flight are given until the deadline; what is still
 * running then is recorded `failed`. A run whose replica died (between claiming its tick and
 * finishing it) is taken over by another replica once its lease expires.
 *
 * @example
 * ```ts
 * const scheduler = new Scheduler(rt);
 * await scheduler.start();
 * await scheduler.stop(Date.now() + 5000);
 * ```
 */
export class Scheduler implements Service {
  readonly name = "scheduler";
  #rt: Runtime;
  #resolved: Map<string, ResolvedSchedule>;
  #runs: Runs;
  #store: ScheduleStore;
  #clock: Clock;
  #loops: ScheduleLoop[] = [];
  #manual: ManualRuns;
  #recoverer: RunRecoverer;

  /**
   * @param rt the runtime (its system's schedules, its store, its metrics)
   * @param options clock, lease, replica name, enqueue function
   * @throws {ConfigError} when a `SCHEDULE_<NAME>_CRON` is invalid
   */
  constructor(rt: Runtime, options: SchedulerOptions = {}) {
    this.#rt = rt;
    this.#resolved = validateSchedules(rt.system, rt.config);
    this.#clock = options.clock ?? systemClock;
    this.#store = new ScheduleStore(rt.store, rt.config.keyPrefix);
    const log = rt.log.child({ component: "scheduler" });
    this.#runs = new Runs({
      rt,
      store: this.#store,
      clock: this.#clock,
      metrics: schedulerMetrics(rt),
      log,
      replica: options.replica ?? rt.instanceId,
      leaseMs: options.leaseMs ?? RUN_LEASE_MS,
      enqueue: options.enqueue ?? _enqueueTask,
      faults: options.faults,
    });
    const defs = new Map<string, ScheduleDefinition>();
    for (const [name, r] of this.#resolved) defs.set(name, r.def);
    this.#manual = new ManualRuns({
      store: this.#store,
      runs: this.#runs,
      schedules: defs,
      log,
      pollMs: options.manualPollMs,
    });
    this.#recoverer = new RunRecoverer({
      store: this.#store,
      runs: this.#runs,
      schedules: defs,
      clock: this.#clock,
      log,
    });
  }

  async start(): Promise<void> {
    const log = this.#rt.log.child({ component: "scheduler" });
    for (const r of this.#resolved.values()) {
      if (!r.parsed) {
        log.info("schedule disabled", { schedule: r.def.name, variable: r.variable });
        continue;
      }
      const loop = new ScheduleLoop({
        def: r.def,
        cron: r.parsed,
        runs: this.#runs,
        store: this.#store,
        clock: this.#clock,
        metrics: schedulerMetrics(this.#rt),
        log,
      });
      await loop.start();
      this.#loops.push(loop);
      log.info("schedule started", {
        schedule: r.def.name,
        cron: r.cron,
        timezone: r.def.timezone,
        next_run_at: loop.nextTick === null ? null : new Date(loop.nextTick).toISOString(),
      });
    }
    await this.#manual.start();
    await this.#recoverer.start();
  }

  async stop(deadline: number): Promise<void> {
    try {
      await Promise.all(this.#loops.map((loop) => loop.stop()));
      await this.#manual.stop();
      await this.#recoverer.stop();
      await this.#runs.drain(deadline);
    } catch (err) {
      this.#rt.log.error("scheduler stop failed", { component: "scheduler", error: err });
    }
  }

  /**
   * Resolves when no run is going, no catch-up is pending and no manual request queued before
   * the call still waits to be taken (tests).
   */
  async idle(): Promise<void> {
    await this.#manual.idle();
    await Promise.all(this.#loops.map((loop) => loop.idle()));
    await this.#runs.idle();
  }
}
