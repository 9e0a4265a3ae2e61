/**
 * @module Defining a task type: its name, input schema, handler and run options.
 */
import type { Schema, SchemaInput, SchemaOutput } from "../schema.ts";
import { backoff } from "../async/backoff.ts";
import { type Definition, type DefinitionKind, definitionKind } from "../definitions.ts";
import type { Logger } from "../log.ts";
import type { Runtime } from "../runtime.ts";
import type { JobStatus } from "../jobs/status.ts";
import { TASK_SHARDS } from "./keys.ts";

/**
 * The input of a task: its schema's input when the task is given by its definition, `unknown`
 * when it is named by a string.
 */
export type TaskInput<T extends TaskDefinition | string> = T extends
  TaskDefinition<infer S, unknown> ? SchemaInput<S>
  : unknown;

/**
 * Enqueues an async task from a handler (`ctx.enqueue`), typed by the task's definition.
 *
 * @param task the task's definition (or its type's name)
 * @param input its input, checked by the task's schema
 * @param options `idempotencyKey` (24 h), `delayMs`
 * @returns the refcode and status
 */
export type EnqueueTask = <T extends TaskDefinition | string>(
  task: T,
  input: TaskInput<T>,
  options?: EnqueueOptions,
) => Promise<EnqueueResult>;

/** Options of `TaskClient.enqueue`. */
export interface EnqueueOptions {
  /** Same key and same type and input within 24 h → the same task; other input → conflict. */
  idempotencyKey?: string;
  /** Start no sooner than this many ms from now. */
  delayMs?: number;
  /**
   * Whose idempotency key it is (the caller's API key, say): the same key from two callers, or
   * for two types, names two different requests. Default: one scope for all.
   */
  idempotencyScope?: string;
}

/** What `TaskClient.enqueue` returns. */
export interface EnqueueResult {
  /** The task's refcode. */
  refcode: string;
  /** Its type. */
  type: string;
  /** `queued` for a new task; the current status when an idempotency key found an earlier one. */
  status: JobStatus;
  /** False when an idempotency key returned an earlier task. */
  created: boolean;
}

/** What a handler receives besides its input. */
export interface TaskContext {
  /** The task's refcode. */
  readonly refcode: string;
  /** This run's number, 1 for the first. */
  readonly attempt: number;
  /**
   * Fires when the task is cancelled, times out, loses its lease or the worker shuts down; its
   * `reason` says which. Pass it on to `fetch`, timers and anything else that can stop early.
   */
  readonly signal: AbortSignal;
  /** Logger with `task`, `refcode` and `attempt` fields. */
  readonly log: Logger;
  /** The runtime (store, bus, configuration) for handlers that read or write data. */
  readonly rt: Runtime;
  /**
   * Reports progress, a number from 0 to 1; writes are coalesced (at most one every 100 ms).
   *
   * @param fraction done so far
   */
  progress(fraction: number): void;
  /** Enqueues another async task, typed by its definition. */
  readonly enqueue: EnqueueTask;
}

/** How long to wait before retry `n` (1 for the first retry). */
export type Backoff = { delayMs?: number; maxDelayMs?: number } | ((retry: number) => number);

/** What `defineTask` takes. */
export interface TaskOptions<S extends Schema, R> {
  /** Unique name, also the URL segment of `POST /tasks/{name}`: `[A-Za-z0-9][A-Za-z0-9._-]*`. */
  name: string;
  /** valibot schema of the input; checked when enqueued (400) and again before each run. */
  input: S;
  /** The work; its JSON-serialisable return value becomes the task's `result`. */
  handler: (input: SchemaOutput<S>, ctx: TaskContext) => R | Promise<R>;
  /** Most runs (first run included) before `failed`; default 3. */
  attempts?: number;
  /** Exponential backoff with ±20 % jitter: `{ delayMs: 1000, maxDelayMs: 300_000 }` by default. */
  backoff?: Backoff;
  /** Longest run; the signal fires then and the run counts as failed. Default 30 min. */
  timeoutMs?: number;
  /** How long a finished task stays readable; default 24 h (at least 7 days for `failed`). */
  resultTtlMs?: number;
  /** Most runs of this type at once in one worker process; default 10. */
  concurrency?: number;
  /**
   * Most tasks of this type waiting at once (queued or due for a retry), across the cluster;
   * enqueueing more answers 429 with `Retry-After`. Default 10000.
   */
  maxQueued?: number;
  /**
   * Over how many of the deployment's 4 task shards (Redis Cluster slots) this type's tasks
   * spread, 1 to 4; default 4. Tasks start in the order they were enqueued within a shard, not
   * across shards: `shards: 1` keeps a type first-in, first-out, on one slot.
   */
  shards?: number;
}

/** A task type, made with {@link defineTask}. */
export interface TaskDefinition<S extends Schema = Schema, R = unknown> extends Definition {
  /** Always `task`. */
  readonly kind: "task";
  /** The type's name. */
  readonly name: string;
  /** Schema of the input. */
  readonly input: S;
  /** The work (method syntax: a typed definition is usable wherever any definition is). */
  handler(input: SchemaOutput<S>, ctx: TaskContext): R | Promise<R>;
  /** Most runs before `failed`. */
  readonly attempts: number;
  /** Delay before retry `n` (1-based), jitter included. */
  readonly backoff: (retry: number) => number;
  /** Longest run, in ms. */
  readonly timeoutMs: number;
  /** How long a finished task stays readable, in ms. */
  readonly resultTtlMs: number;
  /** Most runs of this type at once in one worker process. */
  readonly concurrency: number;
  /** Most tasks of this type queued at once (beyond: 429). */
  readonly maxQueued: number;
  /** How many task shards its tasks spread over. */
  readonly shards: number;
}

/** The key of the task types in a program: `rt.system.all(TASKS)`. */
export const TASKS: DefinitionKind<TaskDefinition> = definitionKind("task");

/** Options' defaults, as documented on {@link TaskOptions}. */
export const TASK_DEFAULTS = {
  attempts: 3,
  delayMs: 1000,
  maxDelayMs: 300_000,
  timeoutMs: 30 * 60_000,
  resultTtlMs: 24 * 3_600_000,
  concurrency: 10,
  maxQueued: 10_000,
  shards: TASK_SHARDS,
} as const;

/** Shortest time a `failed` task stays in the dead-task list. */
export const FAILED_MIN_TTL_MS = 7 * 24 * 3_600_000;

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function _positiveInt(name: string, option: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`Task "${name}": ${option} must be a positive integer (got ${value})`);
  }
  return value;
}

function _shards(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > TASK_SHARDS) {
    throw new RangeError(
      `Task "${name}": shards must be an integer from 1 to ${TASK_SHARDS} (got ${value})`,
    );
  }
  return value;
}

/**
 * Exponential backoff with jitter: `delayMs · 2^(retry-1)`, capped at `maxDelayMs`, then
 * spread ±20 % so retries of tasks that failed together do not land together.
 *
 * @param delayMs first delay
 * @param maxDelayMs cap before jitter
 * @param random source of randomness in [0, 1)
 * @returns the delay function
 */
export function exponentialBackoff(
  delayMs: number,
  maxDelayMs: number,
  random: () => number = Math.random,
): (retry: number) => number {
  return (retry) => backoff(retry, { initialMs: delayMs, maxMs: maxDelayMs, random });
}

/**
 * Defines a task type; add it to the program with `system.add(...)`.
 *
 * @param options name, input schema, handler and run options
 * @returns the definition (kind `task`)
 * @throws {RangeError} on a bad name or option
 * @example
 * ```ts
 * const resize = defineTask({
 *   name: "resize",
 *   input: v.object({ url: v.string() }),
 *   attempts: 5,
 *   handler: async ({ url }, ctx) => {
 *     const res = await fetch(url, { signal: ctx.signal });
 *     ctx.progress(0.5);
 *     return { bytes: (await res.arrayBuffer()).byteLength };
 *   },
 * });
 * ```
 */
export function defineTask<S extends Schema, R>(
  options: TaskOptions<S, R>,
): TaskDefinition<S, R> {
  const { name } = options;
  if (!NAME.test(name)) {
    throw new RangeError(`Task name "${name}" must match ${NAME.source}`);
  }
  const backoff = typeof options.backoff === "function" ? options.backoff : exponentialBackoff(
    options.backoff?.delayMs ?? TASK_DEFAULTS.delayMs,
    options.backoff?.maxDelayMs ?? TASK_DEFAULTS.maxDelayMs,
  );
  return {
    kind: "task",
    name,
    input: options.input,
    handler: options.handler,
    attempts: _positiveInt(name, "attempts", options.attempts ?? TASK_DEFAULTS.attempts),
    backoff,
    timeoutMs: _positiveInt(name, "timeoutMs", options.timeoutMs ?? TASK_DEFAULTS.timeoutMs),
    resultTtlMs: _positiveInt(
      name,
      "resultTtlMs",
      options.resultTtlMs ?? TASK_DEFAULTS.resultTtlMs,
    ),
    concurrency: _positiveInt(
      name,
      "concurrency",
      options.concurrency ?? TASK_DEFAULTS.concurrency,
    ),
    maxQueued: _positiveInt(name, "maxQueued", options.maxQueued ?? TASK_DEFAULTS.maxQueued),
    shards: _shards(name, options.shards ?? TASK_DEFAULTS.shards),
  };
}
