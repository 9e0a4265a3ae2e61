/**
 * @module The scheduler's Prometheus metrics, created once per runtime.
 */
import { Counter, Histogram } from "prom-client";
import { perRuntime, promRegistry, type Runtime } from "../runtime.ts";

/** The scheduler's metrics. */
export interface SchedulerMetrics {
  /** Runs by schedule and final status (`completed`, `failed`, `skipped`). */
  runs: Counter<"schedule" | "status">;
  /** Start − scheduled time of runs started by their tick (not catch-up or manual). */
  lateness: Histogram<"schedule">;
  /** How long runs took. */
  duration: Histogram<"schedule">;
  /** Ticks another replica claimed first. */
  claimsLost: Counter<"schedule">;
  /** Missed ticks (no replica claimed them in time) that the missed policy did not run. */
  missed: Counter<"schedule">;
  /** Runs taken over from a replica that stopped before finishing them. */
  takeovers: Counter<"schedule">;
}

/**
 * The scheduler's metrics on `rt.metrics`.
 *
 * @param rt the runtime
 * @returns the metrics (the same object on every call)
 */
export const schedulerMetrics: (rt: Runtime) => SchedulerMetrics = perRuntime((rt) => ({
  runs: new Counter({
    name: "scheduler_runs_total",
    help: "Schedule runs, by schedule and final status",
    labelNames: ["schedule", "status"],
    registers: [promRegistry(rt)],
  }),
  lateness: new Histogram({
    name: "scheduler_lateness_seconds",
    help: "Time from a tick's scheduled instant to its run's start",
    labelNames: ["schedule"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [promRegistry(rt)],
  }),
  duration: new Histogram({
    name: "scheduler_run_duration_seconds",
    help: "Time schedule runs took, by schedule",
    labelNames: ["schedule"],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
    registers: [promRegistry(rt)],
  }),
  claimsLost: new Counter({
    name: "scheduler_claims_lost_total",
    help: "Ticks another scheduler replica claimed first",
    labelNames: ["schedule"],
    registers: [promRegistry(rt)],
  }),
  missed: new Counter({
    name: "scheduler_ticks_missed_total",
    help: "Missed ticks (within the catch-up window) that the missed policy did not run",
    labelNames: ["schedule"],
    registers: [promRegistry(rt)],
  }),
  takeovers: new Counter({
    name: "scheduler_runs_taken_over_total",
    help: "Runs taken over from a scheduler replica that stopped before finishing them",
    labelNames: ["schedule"],
    registers: [promRegistry(rt)],
  }),
}));
