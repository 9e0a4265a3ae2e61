/**
 * @module Prometheus metrics of parallel tasks, made once per runtime.
 */
import { Counter, Gauge, Histogram } from "prom-client";
import { perRuntime, promRegistry, type Runtime } from "../runtime.ts";

/** The metrics of parallel tasks. */
export interface ParallelMetrics {
  /** Runs created, by task. */
  runs: Counter<"task_id">;
  /** Chunks a thread ran, by task and outcome (completed, dropped, aborted, failed, lost). */
  chunks: Counter<"task_id" | "outcome">;
  /** Time a chunk took on its thread. */
  chunkSeconds: Histogram<"task_id">;
  /** Time from a run's creation to its end, by task and final status. */
  runSeconds: Histogram<"task_id" | "status">;
  /** Threads of this process running a chunk now. */
  threadsBusy: Gauge;
  /** Threads of this process (`PARALLEL_MAX_WORKERS`). */
  threads: Gauge;
  /** Runs cancelled with DELETE, by task. */
  cancels: Counter<"task_id">;
}

/**
 * The runtime's parallel-task metrics, registered on `rt.metrics` the first time.
 *
 * @param rt the runtime
 * @returns the metrics
 */
export const parallelMetrics: (rt: Runtime) => ParallelMetrics = perRuntime((rt) => {
  const registers = [promRegistry(rt)];
  return {
    runs: new Counter({
      name: "parallel_runs_total",
      help: "Parallel-task runs created, by task",
      labelNames: ["task_id"],
      registers,
    }),
    chunks: new Counter({
      name: "parallel_chunks_total",
      help: "Chunks run on this process's threads, by task and outcome",
      labelNames: ["task_id", "outcome"],
      registers,
    }),
    chunkSeconds: new Histogram({
      name: "parallel_chunk_duration_seconds",
      help: "Time one chunk took on its thread",
      labelNames: ["task_id"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    }),
    runSeconds: new Histogram({
      name: "parallel_run_duration_seconds",
      help: "Time from a run's creation to its end, by task and final status",
      labelNames: ["task_id", "status"],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
      registers,
    }),
    threadsBusy: new Gauge({
      name: "parallel_threads_busy",
      help: "Threads of this process running a chunk",
      registers,
    }),
    threads: new Gauge({
      name: "parallel_threads",
      help: "Threads of this process's pool (PARALLEL_MAX_WORKERS)",
      registers,
    }),
    cancels: new Counter({
      name: "parallel_cancels_total",
      help: "Runs cancelled with DELETE, by task",
      labelNames: ["task_id"],
      registers,
    }),
  };
});
