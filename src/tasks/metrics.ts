/**
 * @module Prometheus metrics of async tasks, made once per runtime. Those a run touches are the
 * cheap kinds (`infra/metrics.ts`): a task's run updates half a dozen, and prom-client's label
 * hashing on each cost several microseconds of a no-op task.
 */
import { Gauge } from "prom-client";
import { CheapCounter, CheapGauge, CheapHistogram } from "../infra/metrics.ts";
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
  /**
   * Tasks entering each status (`queued` counts new tasks, retries and hand-backs too); labels
   * `type`, `status`.
   */
  transitions: CheapCounter;
  /** Waiting tasks per type (pending plus scheduled), read from the store at each scrape. */
  depth: Gauge<"type">;
  /** Handlers running in this process; label `type`. */
  running: CheapGauge;
  /**
   * Handler run time by outcome (`completed`, `failed`, `retry`, `cancelled`, `released`);
   * labels `type`, `outcome`.
   */
  runSeconds: CheapHistogram;
  /** From ready (enqueued, retry due, reclaimed) to started; label `type`. */
  startDelaySeconds: CheapHistogram;
  /** Runs that failed and were scheduled again; label `type`. */
  retries: CheapCounter;
  /** Tasks taken back from workers whose lease expired; label `type`. */
  reclaims: CheapCounter;
}

/**
 * Returns the runtime's task metrics, registering them on first use.
 *
 * @param rt the runtime
 * @returns the metrics
 */
export const taskMetrics: (rt: Runtime) => TaskMetrics = perRuntime((rt) => {
  const registry = promRegistry(rt);
  const broker = new TaskBroker(rt.store, taskKeys(rt.config.keyPrefix));
  const defined = new Set(rt.system.all(TASKS).map((d) => d.name));
  return {
    label: (type) => (defined.has(type) ? type : "other"),
    transitions: new CheapCounter(
      "tasks_total",
      "Async tasks entering each status, by type and status",
      ["type", "status"],
      registry,
    ),
    depth: new Gauge({
      name: "tasks_queue_depth",
      help: "Async tasks waiting to run (ready or scheduled for a retry), by type",
      labelNames: ["type"] as const,
      registers: [registry],
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
    running: new CheapGauge(
      "tasks_running",
      "Async task handlers running in this process, by type",
      ["type"],
      registry,
    ),
    runSeconds: new CheapHistogram(
      "task_run_duration_seconds",
      "Async task handler run time, by type and outcome",
      ["type", "outcome"],
      [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800],
      registry,
    ),
    startDelaySeconds: new CheapHistogram(
      "task_start_delay_seconds",
      "Time from ready (enqueued, retry due, reclaimed) to started, by type",
      ["type"],
      [0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registry,
    ),
    retries: new CheapCounter(
      "task_retries_total",
      "Async task runs that failed and were scheduled again, by type",
      ["type"],
      registry,
    ),
    reclaims: new CheapCounter(
      "task_reclaims_total",
      "Async tasks taken back after their worker's lease expired, by type",
      ["type"],
      registry,
    ),
  };
});
