/**
 * @module The capacity planner: calibrates a parallel task on this machine (the time of its
 * chunks on a warm thread, a thread's memory, the store's round trip) and answers how many
 * workers and pods finish N items before a deadline.
 */
import * as v from "valibot";
import type { Store } from "../infra/store.ts";
import type { ParallelTask } from "./define.ts";
import { ThreadPool } from "./pool.ts";

/** Share of the deadline kept free for what calibration does not see (load, GC, skew). */
export const HEADROOM = 0.2;
/** Chunks timed per calibration, spread evenly over the run (costs may grow along it). */
export const SAMPLED_CHUNKS = 5;
/** Calibration stops sampling once it has spent this long (at least one chunk is timed). */
export const CALIBRATION_BUDGET_MS = 2_000;
/** Handing a chunk to a thread and back with `useAtomics: false` (measured: `bench parallel`). */
export const DISPATCH_MS = 0.3;
/** Fixed cost of a run besides its chunks: event-loop turns around the first claim and the merge. */
export const START_BASE_MS = 20;
/** How long a calibration answers for the same task and item count. */
const CACHE_MS = 10 * 60_000;

/** What calibration measured. */
export interface Calibration {
  task_id: string;
  items: number;
  /** Chunks `split` makes of `sample(items)`. */
  chunks: number;
  /** Chunks timed. */
  sampled_chunks: number;
  /** Mean time of one chunk on a warm thread, ms. */
  chunk_ms: number;
  /** The same per item, µs (`chunks × chunk_ms / items`). */
  item_us: number;
  /** Per chunk besides its work: claim and result round trips plus thread dispatch, ms. */
  overhead_ms: number;
  /** Per run besides its chunks: waking a worker, first claim, merge, final write, ms. */
  start_ms: number;
  /** Store round trip (PING), ms. */
  rtt_ms: number;
  /** Resident memory one more warm thread costs this process, bytes. */
  thread_memory_bytes: number;
  /** Resident memory of this process before the thread, bytes. */
  process_memory_bytes: number;
  /** CPU cores of this machine. */
  cores: number;
  measured_at: string;
}

/** The planner's answer. */
export interface Plan {
  task_id: string;
  items: number;
  deadline_ms: number;
  /** Whether `workers` finish within `deadline_ms × (1 − headroom)`. */
  feasible: boolean;
  /** The run's `worker_count`: the fewest that finish in time (the most useful when infeasible). */
  workers: number;
  /** Threads per pod: one per core (CPU-bound), at most `PARALLEL_MAX_WORKERS`. */
  workers_per_pod: number;
  pods: number;
  /** Predicted run time with `workers`, ms. */
  estimated_ms: number;
  headroom: number;
  /** Resident memory of one pod running `workers_per_pod` threads, bytes. */
  pod_memory_bytes: number;
  calibration: Calibration;
  formula: string;
}

/** How {@link plan} sizes a run. */
export const FORMULA =
  "estimated_ms(w) = start_ms + ceil(chunks / w) × (chunk_ms + overhead_ms); workers = the " +
  "smallest w ≤ min(chunks, max worker_count) with estimated_ms(w) ≤ deadline_ms × (1 − " +
  "headroom); workers_per_pod = min(cores, PARALLEL_MAX_WORKERS); pods = ceil(workers / " +
  "workers_per_pod); pod_memory_bytes = process_memory_bytes + workers_per_pod × " +
  "thread_memory_bytes";

/**
 * Sizes a run from a calibration (pure: no measuring).
 *
 * @param cal the calibration
 * @param options the deadline, the task's most `worker_count`, threads per pod, headroom
 * @returns the plan
 */
export function plan(
  cal: Calibration,
  options: { deadlineMs: number; maxWorkers: number; workersPerPod: number; headroom?: number },
): Plan {
  const headroom = options.headroom ?? HEADROOM;
  const budget = options.deadlineMs * (1 - headroom);
  const estimate = (w: number) =>
    cal.start_ms + Math.ceil(cal.chunks / w) * (cal.chunk_ms + cal.overhead_ms);
  const most = Math.max(1, Math.min(options.maxWorkers, cal.chunks));
  let workers = most;
  let feasible = false;
  for (let w = 1; w <= most; w++) {
    // ceil(chunks / w) only changes at a few w; the scan is at most MAX_WORKERS_LIMIT steps.
    if (estimate(w) <= budget) {
      workers = w;
      feasible = true;
      break;
    }
  }
  const perPod = Math.max(1, options.workersPerPod);
  return {
    task_id: cal.task_id,
    items: cal.items,
    deadline_ms: options.deadlineMs,
    feasible,
    workers,
    workers_per_pod: perPod,
    pods: Math.ceil(workers / perPod),
    estimated_ms: Math.round(estimate(workers)),
    headroom,
    pod_memory_bytes: Math.round(cal.process_memory_bytes + perPod * cal.thread_memory_bytes),
    calibration: cal,
    formula: FORMULA,
  };
}

/** A task cannot be planned (no `sample`, or its sample input is invalid). */
export class CapacityError extends Error {
  /** @param message what is missing */
  constructor(message: string) {
    super(message);
    this.name = "CapacityError";
  }
}

async function _rtt(store: Store | undefined): Promise<number> {
  if (!store) return 0;
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    await store.command(["PING"]);
    times.push(performance.now() - t);
  }
  return times.sort((a, b) => a - b)[2];
}

const _round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * Measures a task on this machine: splits `sample(items)`, runs a few of its chunks on a fresh
 * warm thread (the first one twice: module load and JIT are not part of a chunk's cost), and
 * reads the process's resident memory before and after the thread.
 *
 * @param def the task
 * @param items how many items the run would hold
 * @param store the store whose round trip counts per chunk (none: 0)
 * @returns the calibration
 * @throws {CapacityError} when the task has no `sample` or its sample is invalid
 */
export async function calibrate(
  def: ParallelTask,
  items: number,
  store?: Store,
): Promise<Calibration> {
  if (!def.sample) {
    throw new CapacityError(`Parallel task "${def.name}" has no sample input to calibrate with`);
  }
  const parsed = v.safeParse(def.input, def.sample(items));
  if (!parsed.success) {
    throw new CapacityError(
      `The sample input of "${def.name}" for ${items} items is invalid: ${
        parsed.issues[0].message
      }`,
    );
  }
  let chunks: unknown[];
  try {
    chunks = def.split(parsed.output, { workerCount: 1 });
  } catch (err) {
    throw new CapacityError(`The sample input of "${def.name}" cannot be split: ${err}`);
  }
  const rtt = await _rtt(store);
  const base = Deno.memoryUsage().rss;
  const times: number[] = [];
  let threadMemory = 0;
  if (chunks.length > 0) {
    const count = Math.min(SAMPLED_CHUNKS, chunks.length);
    const picks = [
      ...new Set(
        Array.from(
          { length: count },
          (_, i) => Math.round(i * (chunks.length - 1) / Math.max(1, count - 1)),
        ),
      ),
    ];
    const pool = new ThreadPool(1);
    try {
      await pool.start(def.worker, chunks[picks[0]]).result;
      threadMemory = Math.max(0, Deno.memoryUsage().rss - base);
      const started = performance.now();
      for (const i of picks) {
        const t = performance.now();
        await pool.start(def.worker, chunks[i]).result;
        times.push(performance.now() - t);
        if (performance.now() - started > CALIBRATION_BUDGET_MS) break;
      }
    } finally {
      await pool.destroy();
    }
  }
  const chunkMs = times.length ? times.reduce((a, b) => a + b, 0) / times.length : 0;
  return {
    task_id: def.name,
    items,
    chunks: chunks.length,
    sampled_chunks: times.length,
    chunk_ms: _round(chunkMs),
    item_us: _round(items > 0 ? chunks.length * chunkMs * 1000 / items : 0, 6),
    overhead_ms: _round(2 * rtt + DISPATCH_MS),
    start_ms: _round(START_BASE_MS + 8 * rtt),
    rtt_ms: _round(rtt),
    thread_memory_bytes: threadMemory,
    process_memory_bytes: base,
    cores: navigator.hardwareConcurrency ?? 1,
    measured_at: new Date().toISOString(),
  };
}

/** Calibrates once per task and item count (cached), one calibration at a time. */
export class CapacityPlanner {
  #store: Store | undefined;
  #maxThreads: number;
  #cache = new Map<string, { at: number; cal: Promise<Calibration> }>();
  #queue: Promise<unknown> = Promise.resolve();

  /**
   * @param store the store whose round trip counts per chunk
   * @param maxThreads `PARALLEL_MAX_WORKERS` (caps threads per pod)
   */
  constructor(store: Store | undefined, maxThreads: number) {
    this.#store = store;
    this.#maxThreads = maxThreads;
  }

  /**
   * Plans a run.
   *
   * @param def the task
   * @param items how many items
   * @param deadlineMs when it must be done, ms from its start
   * @returns the plan
   * @throws {CapacityError} when the task cannot be calibrated
   */
  async plan(def: ParallelTask, items: number, deadlineMs: number): Promise<Plan> {
    const key = `${def.name}\u0000${items}`;
    let entry = this.#cache.get(key);
    if (!entry || Date.now() - entry.at > CACHE_MS) {
      // Calibrations run one at a time: concurrent ones would slow each other and skew both.
      const cal = this.#queue.then(() => calibrate(def, items, this.#store));
      this.#queue = cal.catch(() => {});
      entry = { at: Date.now(), cal };
      this.#cache.set(key, entry);
      cal.catch(() => this.#cache.delete(key));
      if (this.#cache.size > 100) this.#cache.delete(this.#cache.keys().next().value!);
    }
    const cal = await entry.cal;
    return plan(cal, {
      deadlineMs,
      maxWorkers: def.maxWorkers,
      workersPerPod: Math.min(cal.cores, this.#maxThreads),
    });
  }
}
