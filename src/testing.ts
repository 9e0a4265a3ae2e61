/**
 * @module Unit-testing helpers for the handlers of a program, without Redis or Kafka: an
 * in-memory runtime, running a task handler, delivering messages to a consumer, and firing
 * schedules with a manual clock. Import from `@svc/runtime/testing`.
 */
import { safeParse, type Schema, type SchemaInput } from "./schema.ts";
import { loadConfig } from "./config.ts";
import { BulkConsumerService } from "./consumers/bulk-consumer.ts";
import { ConsumerService } from "./consumers/consumer.ts";
import { DLQ_HEADERS } from "./consumers/dead-letter.ts";
import type { BulkConsumerDefinition, ConsumerDefinition, Message } from "./consumers/define.ts";
import type { BusRecord } from "./infra/bus-consumer.ts";
import { ManualClock } from "./async/clock.ts";
import { SCHEDULES, type Trigger } from "./scheduler/define.ts";
import { Scheduler } from "./scheduler/scheduler.ts";
import { RUNS_KEPT, type ScheduleRunStatus, ScheduleStore } from "./scheduler/store.ts";
import { toIssues } from "./http/validate.ts";
import { createLogger } from "./log.ts";
import { createRuntime, type Runtime } from "./runtime.ts";
import { System } from "./system.ts";
import type { TaskContext, TaskDefinition } from "./tasks/define.ts";
import { enqueueTask } from "./tasks/client.ts";
import { TaskInputError } from "./tasks/errors.ts";
import { TASK_REFCODES } from "./jobs/refcode.ts";

export { type Clock, ManualClock } from "./async/clock.ts";

const _sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function _until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > end) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await _sleep(5);
  }
}

/** Options of {@link testRuntime}. */
export interface TestRuntimeOptions {
  /** The program's definitions and routes (an empty system by default). */
  system?: System;
  /**
   * Environment as the program would read it (`KEY_PREFIX`, `TOPIC_PREFIX`,
   * `SCHEDULE_<NAME>_CRON`…). `REDIS_URL` and `KAFKA_BROKERS` are ignored: the store and bus
   * are always the embedded ones. `LOG_LEVEL` defaults to `error`.
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
  const config = loadConfig({ LOG_LEVEL: "error", ...env });
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
export async function runTask<S extends Schema, R>(
  task: TaskDefinition<S, R>,
  input: SchemaInput<S>,
  options: RunTaskOptions = {},
): Promise<TaskRun<Awaited<R>>> {
  const parsed = safeParse(task.input, input);
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

/** One message for {@link deliver}. */
export interface Delivery {
  /** The message key; null by default. */
  key?: string | null;
  /** The value: a string is sent as is (to test what is not JSON), anything else as JSON. */
  value: unknown;
  /** Message headers. */
  headers?: Record<string, string>;
}

/** What became of one delivered message. */
export interface DeliveryOutcome {
  /** `handled`: the handler returned for it; `dead-lettered`: it went to `<topic>.dlq`. */
  outcome: "handled" | "dead-lettered";
  /** Why it was dead-lettered: `schema` (not JSON or failed the schema) or `handler`. */
  reason?: "schema" | "handler";
  /** The error the dead letter carries. */
  error?: string;
  /** Handler attempts before it was dead-lettered (0 for schema failures). */
  attempts?: number;
}

/** Options of {@link deliver}. */
export interface DeliverOptions {
  /** The runtime to consume in (a fresh {@link testRuntime} by default). */
  rt?: TestRuntime;
  /** Longest wait for every message to be handled or dead-lettered; 30 s by default. */
  timeoutMs?: number;
}

const DELIVERY = "x-test-delivery";

/**
 * Delivers messages to a consumer or bulk consumer as Kafka would: they are published to its
 * topic on the runtime's embedded bus and consumed by the real consumer loop (schema check,
 * retries with the consumer's backoff, batches and the isolation of poison records for a bulk
 * consumer, dead letters), until each is handled or dead-lettered.
 *
 * @param consumer the consumer's definition
 * @param messages the messages, in the order they are published
 * @param options the runtime and the time limit
 * @returns one outcome per message, in the same order
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as v from "valibot";
 * import { defineBulkConsumer, defineConsumer } from "@svc/runtime";
 * import { deliver } from "@svc/runtime/testing";
 *
 * const seen: number[] = [];
 * const counts = defineConsumer({
 *   name: "counts",
 *   topic: "counts",
 *   schema: v.object({ n: v.number() }),
 *   maxAttempts: 2,
 *   initialBackoffMs: 10,
 *   handler: async ({ value }) => {
 *     if (value.n < 0) throw new Error("negative");
 *     seen.push(value.n);
 *   },
 * });
 * const outcomes = await deliver(counts, [{ value: { n: 1 } }, { value: "{oops" }, {
 *   value: { n: -1 },
 * }]);
 * assert.deepEqual(outcomes.map((o) => o.outcome), ["handled", "dead-lettered", "dead-lettered"]);
 * assert.deepEqual(outcomes.map((o) => o.reason), [undefined, "schema", "handler"]);
 * assert.equal(outcomes[2].attempts, 2);
 * assert.deepEqual(seen, [1]);
 *
 * const batches: number[] = [];
 * const totals = defineBulkConsumer({
 *   name: "totals",
 *   topic: "totals",
 *   schema: v.object({ n: v.number() }),
 *   maxAttempts: 1,
 *   handler: async (batch) => {
 *     if (batch.some((m) => m.value.n === 13)) throw new Error("unlucky");
 *     batches.push(batch.length);
 *   },
 * });
 * const bulk = await deliver(totals, [1, 13, 2].map((n) => ({ key: "k", value: { n } })));
 * assert.deepEqual(bulk.map((o) => o.outcome), ["handled", "dead-lettered", "handled"]);
 * ```
 */
export async function deliver(
  consumer: ConsumerDefinition | BulkConsumerDefinition,
  messages: Delivery[],
  options: DeliverOptions = {},
): Promise<DeliveryOutcome[]> {
  const owned = options.rt ? undefined : testRuntime();
  const rt = options.rt ?? owned!;
  const run = crypto.randomUUID();
  const outcomes = new Map<number, DeliveryOutcome>();
  const index = (headers: Record<string, string>) => {
    const [id, i] = (headers[DELIVERY] ?? "").split("/");
    return id === run ? Number(i) : undefined;
  };
  const handled = (batch: Message<unknown>[]) => {
    for (const m of batch) {
      const i = index(m.headers);
      if (i !== undefined) outcomes.set(i, { outcome: "handled" });
    }
  };
  const service = consumer.kind === "consumer"
    ? new ConsumerService(rt, {
      ...consumer,
      handler: async (message, ctx) => {
        await consumer.handler(message, ctx);
        handled([message]);
      },
    })
    : new BulkConsumerService(rt, {
      ...consumer,
      handler: async (batch, ctx) => {
        await consumer.handler(batch, ctx);
        handled(batch);
      },
    });
  const dlq = `${consumer.topic}.dlq`;
  const letters = rt.bus.consumer({
    groupId: `${rt.config.keyPrefix}.test-dlq-${run}`,
    topics: [rt.topic(dlq)],
    fromBeginning: true,
    onRecords: (records: BusRecord[]) => {
      for (const r of records) {
        const i = index(r.headers);
        if (i === undefined) continue;
        outcomes.set(i, {
          outcome: "dead-lettered",
          reason: r.headers[DLQ_HEADERS.reason] as "schema" | "handler",
          error: r.headers[DLQ_HEADERS.error],
          attempts: Number(r.headers[DLQ_HEADERS.attempts]),
        });
      }
    },
  });
  try {
    await rt.bus.ensureTopics([consumer.topic, dlq], consumer.partitions ?? 3);
    await rt.bus.publish(
      consumer.topic,
      messages.map((m, i) => ({
        key: m.key ?? null,
        value: typeof m.value === "string" ? m.value : JSON.stringify(m.value),
        headers: { ...m.headers, [DELIVERY]: `${run}/${i}` },
      })),
    );
    await letters.start();
    await service.start();
    await _until(
      () => outcomes.size === messages.length,
      options.timeoutMs ?? 30_000,
      `${
        messages.length - outcomes.size
      } of ${messages.length} messages to be handled or dead-lettered`,
    );
  } finally {
    await service.stop(Date.now() + 5_000);
    await letters.stop();
    await owned?.close();
  }
  return messages.map((_, i) => outcomes.get(i)!);
}

/** One run of a schedule, as {@link runSchedules} found it. */
export interface ScheduleRunOutcome {
  /** The schedule's name. */
  name: string;
  /** The tick it ran for, ISO-8601. */
  scheduledAt: string;
  /** What started it. */
  trigger: Trigger;
  /** `completed`, `failed`, `skipped`… */
  status: ScheduleRunStatus;
  /** The task an `enqueue` action queued, if any. */
  refcode?: string;
  /** Why it failed. */
  error?: string;
}

/** Options of {@link runSchedules}. */
export interface RunSchedulesOptions {
  /** Where the manual clock starts (epoch ms, Date or ISO string). */
  from: number | Date | string;
  /** Where it stops; every tick in (from, until] fires, one at a time. */
  until: number | Date | string;
}

/**
 * Fires the schedules of `rt.system` deterministically: a scheduler runs on a
 * {@link ManualClock} started at `from`, and the clock moves from tick to tick up to `until`,
 * each run finishing before the next tick fires (`SCHEDULE_<NAME>_CRON` in the runtime's
 * environment applies). Enqueued tasks are queued in `rt`.
 *
 * @param rt a runtime whose system holds the schedules ({@link testRuntime})
 * @param options the time span
 * @returns the runs, oldest first
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defineSchedule, System } from "@svc/runtime";
 * import { runSchedules, testRuntime } from "@svc/runtime/testing";
 *
 * const beats: string[] = [];
 * const beat = defineSchedule({
 *   name: "beat",
 *   cron: "*\/20 * * * * *", // every 20 s
 *   action: (ctx) => void beats.push(ctx.scheduledAt.toISOString()),
 * });
 * await using rt = testRuntime({ system: new System().add(beat) });
 * const runs = await runSchedules(rt, { from: "2025-01-01T00:00:00Z", until: "2025-01-01T00:01:00Z" });
 * assert.deepEqual(runs.map((r) => [r.scheduledAt.slice(14, 19), r.status]), [
 *   ["00:20", "completed"],
 *   ["00:40", "completed"],
 *   ["01:00", "completed"],
 * ]);
 * assert.equal(beats.length, 3);
 * ```
 */
export async function runSchedules(
  rt: Runtime,
  options: RunSchedulesOptions,
): Promise<ScheduleRunOutcome[]> {
  const from = new Date(options.from).getTime();
  const until = new Date(options.until).getTime();
  const clock = new ManualClock(from);
  const scheduler = new Scheduler(rt, { clock, manualPollMs: 50 });
  const schedules = rt.system.all(SCHEDULES);
  await scheduler.start();
  try {
    // Each enabled schedule's loop sleeps on the clock once its start-up claim is done.
    const loops = () => clock.pending;
    await _until(() => loops() > 0 || schedules.length === 0, 5_000, "the schedules' timers");
    await _sleep(10);
    for (;;) {
      const next = clock.nextWakeUp;
      if (next === undefined || next > until) break;
      await clock.advanceTo(next);
      await scheduler.idle();
    }
    await clock.advanceTo(until);
    await scheduler.idle();
  } finally {
    await scheduler.stop(Date.now() + 5_000);
  }
  const store = new ScheduleStore(rt.store, rt.config.keyPrefix);
  const runs: ScheduleRunOutcome[] = [];
  for (const def of schedules) {
    for (const r of await store.runs(def.name, RUNS_KEPT)) {
      if (r.scheduledAt <= from || r.scheduledAt > until) continue;
      runs.push({
        name: def.name,
        scheduledAt: new Date(r.scheduledAt).toISOString(),
        trigger: r.trigger,
        status: r.status,
        ...(r.refcode ? { refcode: r.refcode } : {}),
        ...(r.error ? { error: r.error } : {}),
      });
    }
  }
  return runs.sort((a, b) =>
    a.scheduledAt.localeCompare(b.scheduledAt) || a.name.localeCompare(b.name)
  );
}
