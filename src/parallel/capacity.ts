/**
 * @module The capacity planner: measures a parallel task's cost per item once on this machine
 * (its chunks timed on a warm worker thread, a thread's memory, the store's round trip) and
 * answers, for any number of items, how many workers and pods finish them before a deadline.
 */
import { deadline, DeadlineError } from "../async/deadline.ts";
import { safeParse } from "../schema.ts";
import type { Store } from "../infra/store.ts";
import type { ParallelTask } from "./define.ts";
import { ThreadPool } from "./pool.ts";

/** Share of the deadline kept free for what calibration does not see (load, GC, skew). */
export const HEADROOM = 0.2;
/** Most time one measurement takes, thread start included; a chunk still running is stopped. */
export const CALIBRATION_BUDGET_MS = 2_000;
/** A sample this long to run is enough: the measurement stops growing it. */
export const CALIBRATION_TARGET_MS = 300;
/** Largest sample measured (samples grow ×10 from 1 item). */
const MAX_SAMPLE_ITEMS = 1e9;
/** Handing a chunk to a thread and back with `useAtomics: false` (measured: `bench parallel`). */
export const DISPATCH_MS = 0.3;
/** Fixed cost of a run besides its chunks: event-loop turns around the first claim and the merge. */
export const START_BASE_MS = 20;
/** After this long a measurement is taken again (the answer meanwhile uses the last one). */
export const REFRESH_MS = 10 * 60_000;

/** What measuring a task found, once per task: its cost per item and this machine's figures. */
export interface Measurement {
  task_id: string;
  /** Items of the largest sample timed whole (`sample(n)` for n = 1, 10, 100, …). */
  sample_items: number;
  /** Its chunks, all timed. */
  sampled_chunks: number;
  /** Time of one item on a warm thread, µs (the sample's time / its items). */
  item_us: number;
  /** False when even the smallest sample did not finish in the budget (`item_us` is a floor). */
  complete: boolean;
  /** Time the measurement took, thread start included, ms. */
  measure_ms: number;
  /** Store round trip (PING), ms. */
  rtt_ms: number;
  /** Resident memory one more warm thread costs this process, bytes. */
  thread_memory_bytes: number;
  /** Resident memory of this process before the thread, bytes. */
  process_memory_bytes: number;
  /** CPU cores of this machine. */
  cores: number;
  /** When it was measured (the answer for any `items` reuses it until {@link REFRESH_MS}). */
  measured_at: string;
}

/** A measurement applied to one item count: what {@link plan} sizes a run from. */
export interface Calibration extends Measurement {
  items: number;
  /** Chunks `split` makes of `sample(items)`. */
  chunks: number;
  /** Time of one of those chunks on a warm thread, ms (`items × item_us / chunks`). */
  chunk_ms: number;
  /** Per chunk besides its work: claim and result round trips plus thread dispatch, ms. */
  overhead_ms: number;
  /** Per run besides its chunks: waking a worker, first claim, merge, final write, ms. */
  start_ms: number;
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
  /** When the cost per item was measured. */
  measured_at: string;
  calibration: Calibration;
  formula: string;
}

/** How {@link plan} sizes a run. */
export const FORMULA =
  "chunk_ms = items × item_us / 1000 / chunks (item_us measured once per task); " +
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
    measured_at: cal.measured_at,
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

function _sampleChunks(def: ParallelTask, items: number): unknown[] | string {
  const parsed = safeParse(def.input, def.sample!(items));
  if (!parsed.success) {
    const issue = parsed.issues[0];
    const path = issue.path?.map((p) => String((p as { key: unknown }).key)).join(".");
    return `${path ? `${path} ` : ""}${issue.message}`;
  }
  try {
    return def.split(parsed.output, { workerCount: 1 });
  } catch (err) {
    return `cannot be split: ${err}`;
  }
}

/** Runs a chunk, stopping it at `until` (epoch ms from performance.now()); true if it ended. */
async function _runBy(pool: ThreadPool, file: string, chunk: unknown, until: number) {
  const running = pool.start(file, chunk);
  const ended = await deadline(running.result.then(() => true), until - performance.now())
    .catch((err) => {
      if (err instanceof DeadlineError) return false;
      throw err;
    });
  if (!ended) running.stop();
  return ended;
}

/**
 * Measures a task's cost per item on this machine, within {@link CALIBRATION_BUDGET_MS}: on a
 * fresh worker thread (off the event loop), after one untimed warm-up chunk (module load and
 * JIT are no item's cost), it times every chunk of `sample(1)`, `sample(10)`, `sample(100)`, …
 * until a sample takes {@link CALIBRATION_TARGET_MS}, the next would not fit the budget, or the
 * task's schema refuses the next size. A chunk still running at the budget's end is stopped.
 *
 * @param def the task
 * @param store the store whose round trip counts per chunk (none: 0)
 * @param budgetMs most time to spend
 * @returns the measurement
 * @throws {CapacityError} when the task has no `sample` or even `sample(1)` is invalid
 */
export async function measure(
  def: ParallelTask,
  store?: Store,
  budgetMs = CALIBRATION_BUDGET_MS,
): Promise<Measurement> {
  if (!def.sample) {
    throw new CapacityError(`Parallel task "${def.name}" has no sample input to calibrate with`);
  }
  const first = _sampleChunks(def, 1);
  if (typeof first === "string") {
    throw new CapacityError(`The sample input of "${def.name}" for 1 item is invalid: ${first}`);
  }
  const started = performance.now();
  const deadline = started + budgetMs;
  const rtt = await _rtt(store);
  const base = Deno.memoryUsage().rss;
  let threadMemory = 0;
  let best: { items: number; chunks: number; ms: number } | undefined;
  let floor: { items: number; ms: number } | undefined;
  const pool = new ThreadPool(1);
  try {
    const warm = first.length ? await _runBy(pool, def.worker, first[0], deadline) : true;
    threadMemory = Math.max(0, Deno.memoryUsage().rss - base);
    for (let items = 1; warm && items <= MAX_SAMPLE_ITEMS; items *= 10) {
      const chunks = items === 1 ? first : _sampleChunks(def, items);
      if (typeof chunks === "string") break;
      const t = performance.now();
      let whole = true;
      for (const chunk of chunks) {
        if (!(whole = await _runBy(pool, def.worker, chunk, deadline))) break;
      }
      const ms = performance.now() - t;
      if (!whole) {
        floor ??= { items, ms };
        break;
      }
      if (chunks.length > 0) best = { items, chunks: chunks.length, ms };
      // Samples grow ten-fold: stop once one is long enough, or the next could not finish.
      if (ms >= CALIBRATION_TARGET_MS || performance.now() + 10 * ms > deadline) break;
    }
  } finally {
    await pool.destroy();
  }
  const timed = best ?? floor ?? { items: 1, chunks: 0, ms: budgetMs };
  return {
    task_id: def.name,
    sample_items: timed.items,
    sampled_chunks: best?.chunks ?? 0,
    item_us: _round(timed.ms * 1000 / timed.items, 6),
    complete: best !== undefined,
    measure_ms: Math.round(performance.now() - started),
    rtt_ms: _round(rtt),
    thread_memory_bytes: threadMemory,
    process_memory_bytes: base,
    cores: navigator.hardwareConcurrency ?? 1,
    measured_at: new Date().toISOString(),
  };
}

/**
 * Applies a task's measurement to a run of `items` items: splits `sample(items)` (the same
 * work, on the event loop, as `POST /parallel-tasks` does with a run's input) for its chunk
 * count, and prices each chunk at the measured cost per item.
 *
 * @param m the task's measurement
 * @param def the task
 * @param items how many items the run would hold
 * @returns the calibration {@link plan} sizes the run from
 * @throws {CapacityError} when such a run is over the task's limits
 */
export function calibrationFor(m: Measurement, def: ParallelTask, items: number): Calibration {
  const chunks = _sampleChunks(def, items);
  if (typeof chunks === "string") {
    throw new CapacityError(
      `A run of ${items} items is over the limits of "${def.name}": ${chunks}`,
    );
  }
  if (chunks.length > def.maxChunks) {
    throw new CapacityError(
      `A run of ${items} items splits into ${chunks.length} chunks; "${def.name}" allows ${def.maxChunks}`,
    );
  }
  return {
    ...m,
    items,
    chunks: chunks.length,
    chunk_ms: _round(chunks.length ? items * m.item_us / 1000 / chunks.length : 0),
    overhead_ms: _round(2 * m.rtt_ms + DISPATCH_MS),
    start_ms: _round(START_BASE_MS + 8 * m.rtt_ms),
  };
}

/**
 * Measures a task and applies it to `items` (what the planner does, without its cache).
 *
 * @param def the task
 * @param items how many items the run would hold
 * @param store the store whose round trip counts per chunk (none: 0)
 * @returns the calibration
 * @throws {CapacityError} when the task has no `sample` or such a run is over its limits
 */
export async function calibrate(
  def: ParallelTask,
  items: number,
  store?: Store,
): Promise<Calibration> {
  return calibrationFor(await measure(def, store), def, items);
}

/**
 * Plans runs from one measurement per task: concurrent requests share it, every `items` value
 * reuses it, and after {@link REFRESH_MS} it is taken again in the background while answers go
 * on using the last one. Measurements run one at a time (concurrent ones would skew each other).
 */
export class CapacityPlanner {
  #store: Store | undefined;
  #maxThreads: number;
  #measured = new Map<string, { at: number; measurement: Promise<Measurement> }>();
  #refreshing = new Set<string>();
  #queue: Promise<unknown> = Promise.resolve();
  #clock: () => number;

  /**
   * @param store the store whose round trip counts per chunk
   * @param maxThreads `PARALLEL_MAX_WORKERS` (caps threads per pod)
   * @param clock epoch ms (tests)
   */
  constructor(store: Store | undefined, maxThreads: number, clock: () => number = Date.now) {
    this.#store = store;
    this.#maxThreads = maxThreads;
    this.#clock = clock;
  }

  #measure(def: ParallelTask): Promise<Measurement> {
    const next = this.#queue.then(() => measure(def, this.#store));
    this.#queue = next.catch(() => {});
    return next;
  }

  /**
   * The task's measurement: shared while it runs, reused until stale, then refreshed.
   *
   * @param def the task
   * @returns the measurement
   */
  measurement(def: ParallelTask): Promise<Measurement> {
    const entry = this.#measured.get(def.name);
    if (!entry) {
      const measurement = this.#measure(def);
      this.#measured.set(def.name, { at: this.#clock(), measurement });
      measurement.catch(() => this.#measured.delete(def.name));
      return measurement;
    }
    if (this.#clock() - entry.at > REFRESH_MS && !this.#refreshing.has(def.name)) {
      this.#refreshing.add(def.name);
      this.#measure(def)
        .then((m) =>
          this.#measured.set(def.name, { at: this.#clock(), measurement: Promise.resolve(m) })
        )
        .catch(() => {})
        .finally(() => this.#refreshing.delete(def.name));
    }
    return entry.measurement;
  }

  /**
   * Plans a run.
   *
   * @param def the task
   * @param items how many items
   * @param deadlineMs when it must be done, ms from its start
   * @returns the plan
   * @throws {CapacityError} when the task cannot be measured or such a run is over its limits
   */
  async plan(def: ParallelTask, items: number, deadlineMs: number): Promise<Plan> {
    const m = await this.measurement(def);
    const cal = calibrationFor(m, def, items);
    return plan(cal, {
      deadlineMs,
      maxWorkers: def.maxWorkers,
      workersPerPod: Math.min(cal.cores, this.#maxThreads),
    });
  }
}
