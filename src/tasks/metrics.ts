/**
 * @module Prometheus metrics of async tasks, made once per runtime.
 */
import { Counter, Gauge, Histogram } from "prom-client";
import { perRuntime, promRegistry, type Runtime } from "../runtime.ts";
import { TASKS } from "./define.ts";
import { taskKeys } from "./keys.ts";
import { TaskBroker } from "./broker.ts";

/** The metrics; every label set is `type` plus what the name says. */
export interface TaskMetrics {
  /**
   * The `type` label of a type name read back from the store: the name when the program
   * defines it, `other` otherwise (another program on the same prefix), so labels stay a
   * closed set.
   */
  label(type: string): string;
  /** Tasks entering each status (`queued` counts new tasks, retries and hand-backs too). */
  transitions: Counter<"type" | "status">;
  /** Waiting tasks per type (pending plus scheduled), read from the store at each scrape. */
  depth: Gauge<"type">;
  /** Handlers running in this process. */
  running: Gauge<"type">;
  /** Handler run time by outcome (`completed`, `failed`, `retry`, `cancelled`, `released`). */
  runSeconds: Histogram<"type" | "outcome">;
  /** From ready (enqueued, retry due, reclaimed) to started. */
  startDelaySeconds: Histogram<"type">;
  /** Runs that failed and were scheduled again. */
  retries: Counter<"type">;
  /** Tasks taken back from workers whose lease expired. */
  reclaims: Counter<"type">;
}

/**
 * Returns the runtime's task metrics, registering them on first use.
 *
 * @param rt the runtime
 * @returns the metrics
 */
export const taskMetrics: (rt: Runtime) => TaskMetrics = perRuntime((rt) => {
  const registers = [promRegistry(rt)];
  const broker = new TaskBroker(rt.store, taskKeys(rt.config.keyPrefix));
  const defined = new Set(rt.system.all(TASKS).map((d) => d.name));
  return {
    label: (type) => (defined.has(type) ? type : "other"),
    transitions: new Counter({
      name: "tasks_total",
      help: "Async tasks entering each status, by type and status",
      labelNames: ["type", "status"] as const,
      registers,
    }),
    depth: new Gauge({
      name: "tasks_queue_depth",
      help: "Async tasks waiting to run (ready or scheduled for a retry), by type",
      labelNames: ["type"] as const,
      registers,
      async collect() {
        const types = rt.system.all(TASKS).map((d) => d.name);
        if (types.length === 0) return;
        try {
          for (const [type, n] of await broker.depth(types)) this.set({ type }, n);
        } catch {
          // The store is down: keep the last values; /readyz tells the story.
        }
      },
    }),
    running: new Gauge({
      name: "tasks_running",
      help: "Async task handlers running in this process, by type",
      labelNames: ["type"] as const,
      registers,
    }),
    runSeconds: new Histogram({
      name: "task_run_duration_seconds",
      help: "Async task handler run time, by type and outcome",
      labelNames: ["type", "outcome"] as const,
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800],
      registers,
    }),
    startDelaySeconds: new Histogram({
      name: "task_start_delay_seconds",
      help: "Time from ready (enqueued, retry due, reclaimed) to started, by type",
      labelNames: ["type"] as const,
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers,
    }),
    retries: new Counter({
      name: "task_retries_total",
      help: "Async task runs that failed and were scheduled again, by type",
      labelNames: ["type"] as const,
      registers,
    }),
    reclaims: new Counter({
      name: "task_reclaims_total",
      help: "Async tasks taken back after their worker's lease expired, by type",
      labelNames: ["type"] as const,
      registers,
    }),
  };
});
