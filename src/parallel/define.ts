/**
 * @module Defining a parallel task: its input schema, its tinypool worker file, how its input
 * splits into chunks and how the chunks' results merge.
 */
import type { Schema, SchemaInput, SchemaOutput } from "../schema.ts";
import { type Definition, type DefinitionKind, definitionKind } from "../definitions.ts";

/** Most `worker_count` a run may ask for when its task sets no `maxWorkers`. */
export const DEFAULT_MAX_WORKERS = 64;
/** Highest `maxWorkers` a task may set: the cluster-wide ceiling of `worker_count`. */
export const MAX_WORKERS_LIMIT = 1024;
/** Most chunks one run may split into (each is a Redis hash field while the run lives). */
export const MAX_CHUNKS = 10_000;
/** Most runs of one task that may be queued or running at once, across the cluster (default). */
export const DEFAULT_MAX_ACTIVE_RUNS = 10;
/** How long a claimed chunk stays its process's without a heartbeat (default). */
export const DEFAULT_LEASE_MS = 5_000;
/** How often a chunk may lose its process (lease expiry) before the run fails (default). */
export const DEFAULT_MAX_ATTEMPTS = 3;

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * The second argument of a worker file's function: whether its run was cancelled. A worker in a
 * long synchronous loop checks it now and then (Deno cannot interrupt a running thread).
 */
export interface ChunkSignal {
  /** True once the chunk should stop. */
  readonly aborted: boolean;
  /** Throws an `AbortError` once the chunk should stop. */
  throwIfAborted(): void;
}

/** What `split` learns about the run besides its input. */
export interface SplitContext {
  /** The run's `worker_count`. */
  workerCount: number;
}

/** Options of {@link defineParallelTask}. */
export interface ParallelTaskOptions<S extends Schema, C, R, M> {
  /** The `task_id` clients name in `POST /parallel-tasks`. */
  name: string;
  /** Valibot schema of the run's `input`. */
  input: S;
  /**
   * The tinypool worker file: its default export receives one chunk and a {@link ChunkSignal}
   * and returns the chunk's result (JSON). A pure function: no Redis, no Kafka, nothing but the
   * chunk.
   */
  worker: URL;
  /** Splits a run's input into chunks (JSON values); each chunk runs on one thread. */
  split(input: SchemaOutput<S>, context: SplitContext): C[];
  /** Merges the chunks' results, given in chunk order, into the run's result. */
  merge(results: R[]): M;
  /** Most `worker_count` a run may ask for; default {@link DEFAULT_MAX_WORKERS}. */
  maxWorkers?: number;
  /**
   * A representative input of `items` items, for the capacity planner (`GET
   * /parallel-tasks/capacity`). Without it the task cannot be planned.
   */
  sample?(items: number): SchemaInput<S>;
  /** Lease of a claimed chunk, renewed by heartbeats; default {@link DEFAULT_LEASE_MS}. */
  leaseMs?: number;
  /** Times a chunk may lose its process before the run fails; default 3. */
  maxAttempts?: number;
  /**
   * Most runs of this task queued or running at once, across the cluster; another answers 429
   * with `Retry-After`. Default {@link DEFAULT_MAX_ACTIVE_RUNS}.
   */
  maxActiveRuns?: number;
  /**
   * Most chunks one run may split into; more answers 400 naming the limit. Default (and
   * ceiling) {@link MAX_CHUNKS}. With a bounded cost per chunk (a `split` that sizes chunks by
   * their work, and an input schema that refuses what no chunk size can bound), this bounds the
   * work one request creates.
   */
  maxChunks?: number;
}

/** A parallel task, as `System.add` takes it. */
export interface ParallelTask<
  S extends Schema = Schema,
  C = unknown,
  R = unknown,
  M = unknown,
> extends Definition {
  /** Always `parallel-task`. */
  readonly kind: "parallel-task";
  /** The `task_id`. */
  readonly name: string;
  /** Schema of a run's input. */
  readonly input: S;
  /** The worker file as a `file:` URL string (tinypool's `filename`). */
  readonly worker: string;
  // Methods, not function properties: a task of any input type is a `ParallelTask`.
  /**
   * Splits a run's input into chunks.
   *
   * @param input the run's input, validated
   * @param context the run's `worker_count`
   * @returns the chunks
   */
  split(input: SchemaOutput<S>, context: SplitContext): C[];
  /**
   * Merges the chunks' results, in chunk order.
   *
   * @param results one per chunk
   * @returns the run's result
   */
  merge(results: R[]): M;
  /** Most `worker_count` a run may ask for. */
  readonly maxWorkers: number;
  /**
   * A representative input of `items` items, for the capacity planner.
   *
   * @param items how many items
   * @returns the input
   */
  sample?(items: number): SchemaInput<S>;
  /** Lease of a claimed chunk, in ms. */
  readonly leaseMs: number;
  /** Times a chunk may lose its process before the run fails. */
  readonly maxAttempts: number;
  /** Most runs queued or running at once (beyond: 429). */
  readonly maxActiveRuns: number;
  /** Most chunks one run may split into. */
  readonly maxChunks: number;
}

/** The key of the parallel tasks in a program: `rt.system.all(PARALLEL_TASKS)`. */
export const PARALLEL_TASKS: DefinitionKind<ParallelTask> = definitionKind("parallel-task");

function _intIn(value: number, min: number, max: number, what: string): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${what} must be an integer from ${min} to ${max} (got ${value})`);
  }
  return value;
}

/**
 * Defines a parallel task: a run's input is split into chunks that run on tinypool threads of
 * the `parallel-worker` processes, at most `worker_count` at a time across the cluster.
 *
 * @param options name, input schema, worker file, split and merge
 * @returns the definition, for `System.add`
 * @throws {RangeError} on a bad name or limit
 * @example
 * ```ts
 * const primes = defineParallelTask({
 *   name: "primes",
 *   input: v.object({ from: v.number(), to: v.number() }),
 *   worker: new URL("../../workers/primes.ts", import.meta.url),
 *   split: ({ from, to }) => [{ from, to: (from + to) / 2 }, { from: (from + to) / 2, to }],
 *   merge: (counts: number[]) => ({ count: counts.reduce((a, b) => a + b, 0) }),
 * });
 * ```
 */
export function defineParallelTask<S extends Schema, C, R, M>(
  options: ParallelTaskOptions<S, C, R, M>,
): ParallelTask<S, C, R, M> {
  if (!NAME.test(options.name)) {
    throw new RangeError(
      `Parallel task name "${options.name}" must be 1-64 of A-Z a-z 0-9 . _ - (not first)`,
    );
  }
  if (!(options.worker instanceof URL) || options.worker.protocol !== "file:") {
    throw new RangeError(`Parallel task "${options.name}": worker must be a file: URL`);
  }
  const leaseMs = _intIn(options.leaseMs ?? DEFAULT_LEASE_MS, 300, 3_600_000, "leaseMs");
  return {
    kind: "parallel-task",
    name: options.name,
    input: options.input,
    worker: options.worker.href,
    split: options.split,
    merge: options.merge,
    maxWorkers: _intIn(
      options.maxWorkers ?? DEFAULT_MAX_WORKERS,
      1,
      MAX_WORKERS_LIMIT,
      "maxWorkers",
    ),
    sample: options.sample,
    leaseMs,
    maxAttempts: _intIn(options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS, 1, 100, "maxAttempts"),
    maxActiveRuns: _intIn(
      options.maxActiveRuns ?? DEFAULT_MAX_ACTIVE_RUNS,
      1,
      100_000,
      "maxActiveRuns",
    ),
    maxChunks: _intIn(options.maxChunks ?? MAX_CHUNKS, 1, MAX_CHUNKS, "maxChunks"),
  };
}
