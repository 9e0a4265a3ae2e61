/**
 * @module Defining consumers and bulk consumers: the public API of `src/consumers/`.
 */
import type { Schema, SchemaOutput } from "../schema.ts";
import type { Logger } from "../log.ts";
import type { Runtime } from "../runtime.ts";
import type { Command } from "../infra/store.ts";
import type { Effect } from "./once.ts";
import { type DefinitionKind, definitionKind } from "../definitions.ts";
import type { EnqueueTask } from "../tasks/define.ts";

/** A consumed message whose value passed the consumer's schema. */
export interface Message<T> {
  /** The topic it was read from, `TOPIC_PREFIX` included. */
  topic: string;
  /** Its partition. */
  partition: number;
  /** Its offset in the partition. */
  offset: number;
  /** Its key, or null. */
  key: string | null;
  /** The value, parsed as JSON and validated by the schema. */
  value: T;
  /** Its headers. */
  headers: Record<string, string>;
  /** Epoch ms stamped by the producer. */
  timestamp: number;
  /** The message's identity, `topic/partition/offset`: the same on every redelivery. */
  id: string;
}

/** What a handler receives besides its message(s). */
export interface BaseContext {
  /** The process's runtime: store, bus, configuration. */
  rt: Runtime;
  /** Logger with the consumer's name. */
  log: Logger;
  /** Aborted when the shutdown deadline comes: stop and throw, the work is handed back. */
  signal: AbortSignal;
  /** 1 on the first try, 2 on the first retry… */
  attempt: number;
  /**
   * Enqueues an async task, typed by its definition. A retried message enqueues again unless
   * `options.idempotencyKey` is given (the message's `id` is a good one).
   */
  enqueue: EnqueueTask;
}

/** Context of a consumer's handler. */
export interface ConsumerContext extends BaseContext {
  /**
   * Runs `commands` atomically, at most once per identity (default: this message's `id`),
   * however often the message is redelivered: the effect and its marker are written together.
   *
   * @param commands the effect, e.g. `[["HINCRBY", key, "count", 1]]`
   * @param identity what makes the effect unique (e.g. an order id); default the message id
   * @returns true when applied now, false when it had been applied before
   */
  once(commands: Command[], identity?: string): Promise<boolean>;
}

/** Context of a bulk consumer's handler. */
export interface BulkContext extends BaseContext {
  /**
   * Applies many effects in one atomic round trip, each at most once per identity, then the
   * `summary` commands, where the argument `APPLIED` stands for how many were applied now.
   *
   * @param effects one entry per message: identity and commands
   * @param summary commands run once per call (counters)
   * @returns how many effects were applied now
   */
  onceEach(effects: Effect[], summary?: Command[]): Promise<number>;
}

/** Retry policy of a consumer. */
export interface RetryOptions {
  /** Tries before a message goes to the dead-letter topic (default 5). */
  maxAttempts?: number;
  /** First delay between tries (default 200 ms); it doubles up to `maxBackoffMs`, ±20 %. */
  initialBackoffMs?: number;
  /** Cap of the delay between tries before its ±20 % spread (default 5 000 ms). */
  maxBackoffMs?: number;
}

/** What both kinds of consumers share. */
export interface CommonOptions<S extends Schema> extends RetryOptions {
  /** Unique among consumers; names metrics, logs and the readiness check. */
  name: string;
  /** Topic, without `TOPIC_PREFIX` (added at run time); the dead letters go to `<topic>.dlq`. */
  topic: string;
  /** Consumer group, without `KEY_PREFIX` (added at run time); default the name. */
  group?: string;
  /** Schema of the JSON value; a message failing it goes to the dead-letter topic at once. */
  schema: S;
  /** A new group starts at the earliest message (default) or only reads new ones. */
  fromBeginning?: boolean;
  /** Partitions of the topic and its dead-letter topic when they are created (default 3). */
  partitions?: number;
  /** The group drops a silent member after this long (default 10 000 ms). */
  sessionTimeoutMs?: number;
}

/** Options of `defineConsumer`. */
export interface ConsumerOptions<S extends Schema> extends CommonOptions<S> {
  /** Handles one message; throwing retries it with backoff, then dead-letters it. */
  handler(message: Message<SchemaOutput<S>>, ctx: ConsumerContext): Promise<void>;
  /** Partitions handled at the same time (each one in order); default 1. */
  partitionsConsumedConcurrently?: number;
}

/** Options of `defineBulkConsumer`. */
export interface BulkConsumerOptions<S extends Schema> extends CommonOptions<S> {
  /**
   * Handles a batch (across partitions, in order within each); throwing retries it, then
   * splits it to isolate the records that fail, which are dead-lettered.
   */
  handler(batch: Message<SchemaOutput<S>>[], ctx: BulkContext): Promise<void>;
  /** Most records in a batch (default 500). */
  maxBatchSize?: number;
  /** Most bytes (keys and values) in a batch (default 1 MiB). */
  maxBatchBytes?: number;
  /** Longest a batch waits to fill up after its first record (default 200 ms). */
  maxWaitMs?: number;
}

/** A consumer, as `system.add` takes it. */
export interface ConsumerDefinition<S extends Schema = Schema> extends ConsumerOptions<S> {
  /** Always `consumer`. */
  readonly kind: "consumer";
}

/** A bulk consumer, as `system.add` takes it. */
export interface BulkConsumerDefinition<S extends Schema = Schema> extends BulkConsumerOptions<S> {
  /** Always `bulk-consumer`. */
  readonly kind: "bulk-consumer";
}

/** The key of the consumers in a program: `rt.system.all(CONSUMERS)`. */
export const CONSUMERS: DefinitionKind<ConsumerDefinition> = definitionKind("consumer");

/** The key of the bulk consumers in a program: `rt.system.all(BULK_CONSUMERS)`. */
export const BULK_CONSUMERS: DefinitionKind<BulkConsumerDefinition> = definitionKind(
  "bulk-consumer",
);

/** Stands for "the number of effects applied" in `onceEach`'s summary commands. */
export const APPLIED = "$applied";

function _validate(options: CommonOptions<Schema>): void {
  if (!/^[A-Za-z0-9_.-]{1,100}$/.test(options.name)) {
    throw new Error(`Consumer name "${options.name}" must be 1-100 of A-Z a-z 0-9 _ . -`);
  }
  if (!/^[A-Za-z0-9_.-]{1,200}$/.test(options.topic)) {
    throw new Error(`Topic "${options.topic}" must be 1-200 of A-Z a-z 0-9 _ . -`);
  }
  if ((options.maxAttempts ?? 5) < 1) {
    throw new Error(`Consumer "${options.name}": maxAttempts must be at least 1`);
  }
}

/**
 * Defines a consumer: one message at a time per partition, at-least-once, retried with
 * backoff, dead-lettered to `<topic>.dlq` when it keeps failing. Runs in role `consumer`.
 *
 * @param options topic, schema, handler and policies
 * @returns the definition, for `system.add`
 * @example
 * ```ts
 * const orders = defineConsumer({
 *   name: "orders",
 *   topic: "orders",
 *   schema: v.object({ id: v.string() }),
 *   async handler(message, ctx) {
 *     await ctx.once([["HSET", `svc:{order:${message.value.id}}`, "processed", "1"]]);
 *   },
 * });
 * ```
 */
export function defineConsumer<S extends Schema>(
  options: ConsumerOptions<S>,
): ConsumerDefinition<S> {
  _validate(options);
  return { ...options, kind: "consumer" };
}

/**
 * Defines a bulk consumer: records gathered across fetches and partitions into batches bounded
 * by count, bytes and time, written together; a failing batch is retried, then split to find
 * the poison records, which go to `<topic>.dlq`. Runs in role `bulk-consumer`.
 *
 * @param options topic, schema, handler, batch bounds and policies
 * @returns the definition, for `system.add`
 * @example
 * ```ts
 * const events = defineBulkConsumer({
 *   name: "events",
 *   topic: "events",
 *   schema: v.object({ type: v.string() }),
 *   maxBatchSize: 1000,
 *   async handler(batch, ctx) {
 *     await ctx.onceEach(
 *       batch.map((m) => ({ id: m.id, commands: [["RPUSH", "svc:{events}", JSON.stringify(m.value)]] })),
 *       [["HINCRBY", "svc:{events}:stats", "stored", APPLIED]],
 *     );
 *   },
 * });
 * ```
 */
export function defineBulkConsumer<S extends Schema>(
  options: BulkConsumerOptions<S>,
): BulkConsumerDefinition<S> {
  _validate(options);
  if ((options.maxBatchSize ?? 500) < 1) {
    throw new Error(`Bulk consumer "${options.name}": maxBatchSize must be at least 1`);
  }
  return { ...options, kind: "bulk-consumer" };
}
