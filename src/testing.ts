/**
 * @module Unit-testing helpers for the handlers of a program, without Redis or Kafka: an
 * in-memory runtime, running a task handler, and a manual clock for schedules. Import from
 * `@svc/runtime/testing`.
 */
import * as v from "valibot";
import { loadConfig } from "./config.ts";
import { toIssues } from "./http/validate.ts";
import { createLogger } from "./log.ts";
import { createRuntime, type Runtime } from "./runtime.ts";
import { System } from "./system.ts";
import type { TaskContext, TaskDefinition } from "./tasks/define.ts";
import { enqueueTask } from "./tasks/client.ts";
import { TaskInputError } from "./tasks/errors.ts";
import { TASK_REFCODES } from "./jobs/refcode.ts";

export { type Clock, ManualClock } from "./async/clock.ts";

/** Options of {@link testRuntime}. */
export interface TestRuntimeOptions {
  /** The program's definitions and routes (an empty system by default). */
  system?: System;
  /**
   * Environment as the program would read it (`KEY_PREFIX`, `TOPIC_PREFIX`,
   * `SCHEDULE_<NAME>_CRON`…). `REDIS_URL` and `KAFKA_BROKERS` are ignored: the store and bus
   * are always the embedded ones. `LOG_LEVEL` defaults to `warn`.
   */
  env?: Record<string, string>;
}

/** An in-memory runtime; `close()` releases it. */
export interface TestRuntime extends Runtime {
  /** Closes the embedded store and bus. */
  close(): Promise<void>;
}

/**
 * Creates a runtime on the embedded store and bus, as `ROLE=all` without `REDIS_URL` or
 * `KAFKA_BROKERS` would run: the same atomic operations and semantics as Redis and Kafka,
 * living as long as the runtime.
 *
 * @param options the system and environment
 * @returns the runtime; call `close()` when done
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { testRuntime } from "@svc/runtime/testing";
 *
 * await using rt = testRuntime({ env: { KEY_PREFIX: "unit" } });
 * await rt.store.command(["SET", "unit:greeting", "hello"]);
 * assert.equal(await rt.store.command(["GET", "unit:greeting"]), "hello");
 * ```
 */
export function testRuntime(options: TestRuntimeOptions = {}): TestRuntime & AsyncDisposable {
  const { REDIS_URL: _redis, KAFKA_BROKERS: _kafka, ...env } = options.env ?? {};
  const config = loadConfig({ LOG_LEVEL: "warn", ...env });
  const rt = createRuntime(config, options.system ?? new System(), {
    log: createLogger(config.logLevel, { test: true }),
  });
  const close = async () => {
    rt.stopping = true;
    await Promise.allSettled([rt.bus.close(), rt.store.close()]);
  };
  return Object.assign(rt, { close, [Symbol.asyncDispose]: close });
}

/** Options of {@link runTask}. */
export interface RunTaskOptions {
  /** The runtime the handler sees as `ctx.rt` (a fresh {@link testRuntime} by default). */
  rt?: Runtime;
  /** `ctx.attempt` (1 by default). */
  attempt?: number;
  /** `ctx.signal`: abort it to test cancellation. */
  signal?: AbortSignal;
}

/** What one run of a task handler did. */
export interface TaskRun<R> {
  /** `completed` when the handler returned, `failed` when it threw. */
  status: "completed" | "failed";
  /** What the handler returned (`completed`), as JSON would carry it. */
  result?: R;
  /** What the handler threw (`failed`). */
  error?: unknown;
  /** Every `ctx.progress(…)` report, in order. */
  progress: number[];
  /** The refcode the handler saw as `ctx.refcode`. */
  refcode: string;
  /** The tasks the handler enqueued with `ctx.enqueue`, in order (queued in `rt`). */
  enqueued: { type: string; input: unknown; refcode: string }[];
}

/**
 * Runs a task's handler once, as a worker would: the input is checked by the task's schema
 * first (a {@link TaskInputError} is thrown when it fails), the handler gets a full context, and
 * its progress reports and its result or error are returned.
 *
 * @param task the task's definition
 * @param input its input
 * @param options the runtime, attempt and signal the handler sees
 * @returns status, result or error, and the progress reports
 * @throws {TaskInputError} when the input fails the task's schema
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as v from "valibot";
 * import { defineTask } from "@svc/runtime";
 * import { runTask } from "@svc/runtime/testing";
 *
 * const double = defineTask({
 *   name: "double",
 *   input: v.object({ n: v.number() }),
 *   handler: ({ n }, ctx) => {
 *     ctx.progress(0.5);
 *     return { doubled: n * 2 };
 *   },
 * });
 * const run = await runTask(double, { n: 21 });
 * assert.equal(run.status, "completed");
 * assert.deepEqual(run.result, { doubled: 42 });
 * assert.deepEqual(run.progress, [0.5]);
 * ```
 */
export async function runTask<S extends v.GenericSchema, R>(
  task: TaskDefinition<S, R>,
  input: v.InferInput<S>,
  options: RunTaskOptions = {},
): Promise<TaskRun<Awaited<R>>> {
  const parsed = v.safeParse(task.input, input);
  if (!parsed.success) throw new TaskInputError(task.name, toIssues(parsed.issues));
  const owned = options.rt ? undefined : testRuntime();
  const rt = options.rt ?? owned!;
  const refcode = TASK_REFCODES.make();
  const progress: number[] = [];
  const enqueued: TaskRun<unknown>["enqueued"] = [];
  const ctx: TaskContext = {
    refcode,
    attempt: options.attempt ?? 1,
    signal: options.signal ?? new AbortController().signal,
    log: rt.log.child({ task: task.name, refcode }),
    rt,
    progress: (fraction) => void progress.push(Math.min(1, Math.max(0, fraction))),
    enqueue: async (next, nextInput, enqueueOptions) => {
      const done = await enqueueTask(rt, next, nextInput, enqueueOptions);
      enqueued.push({ type: done.type, input: nextInput, refcode: done.refcode });
      return done;
    },
  };
  try {
    const value = await task.handler(parsed.output, ctx);
    // A stored result is JSON: what a client reads back is the round trip, not the object.
    const result = value === undefined ? undefined : JSON.parse(JSON.stringify(value));
    return { status: "completed", result, progress, refcode, enqueued };
  } catch (error) {
    return { status: "failed", error, progress, refcode, enqueued };
  } finally {
    await owned?.close();
  }
}
