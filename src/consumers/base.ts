/**
 * @module What both consumer loops share: topic and group names, the group consumer and its
 * buffer, commits, decoding, dead letters, backoff, shutdown, readiness and lag.
 */
import { backoff } from "../async/backoff.ts";
import { settleBy } from "../async/deadline.ts";
import { delay } from "../async/delay.ts";
import { clearStatus, countDeadLetters, REPORT_INTERVAL_MS, reportStatus } from "./status.ts";
import * as v from "valibot";
import { safeParse, type Schema } from "../schema.ts";
import type { Runtime, Service } from "../runtime.ts";
import type { Logger } from "../log.ts";
import { type Check, UnavailableError } from "../infra/store.ts";
import {
  type BusRecord,
  type GroupConsumer,
  partitionKey,
  type PartitionOffset,
  type TopicPartition,
} from "../infra/bus-consumer.ts";
import type { BaseContext, CommonOptions, Message } from "./define.ts";
import { enqueueTask } from "../tasks/client.ts";
import { type BufferLimits, RecordBuffer, type Taken } from "./record-buffer.ts";
import { Committer } from "./committer.ts";
import { type DeadLetter, deadLetterMessage } from "./dead-letter.ts";
import { type ConsumerMetrics, consumerMetrics, type LagSource } from "./metrics.ts";
import { onceMarkerKey } from "./keys.ts";
import { MESSAGE_ID_HEADER } from "../infra/bus.ts";

/** A message that is not JSON or fails the schema: dead-lettered at once. */
export class SchemaError extends Error {
  /** @param message what is wrong */
  constructor(message: string) {
    super(message);
    this.name = "SchemaError";
  }
}

/** How often handled offsets are committed. */
const COMMIT_INTERVAL_MS = 500;
/** Handlers get this long between their abort signal and the shutdown deadline. */
const HANDLER_GRACE_MS = 1_000;

/**
 * Whether an error means a dependency is down (then the work waits for it instead of using up
 * its attempts and landing in the dead-letter topic).
 *
 * @param err the error
 * @returns true for `UnavailableError`
 */
export function isUnavailable(err: unknown): boolean {
  return err instanceof UnavailableError ||
    (err instanceof Error && err.name === "UnavailableError");
}

/** How often a consumer whose topic does not exist (and may not be created) looks again. */
const MISSING_TOPIC_RECHECK_MS = 30_000;

/** The running part of a consumer definition, common to both kinds. */
export abstract class BaseConsumerService implements Service, LagSource {
  readonly name: string;
  readonly consumer: string;
  protected readonly rt: Runtime;
  protected readonly log: Logger;
  protected readonly metrics: ConsumerMetrics;
  protected readonly topic: string;
  protected readonly dlqTopic: string;
  protected readonly groupId: string;
  protected readonly buffer: RecordBuffer;
  protected readonly maxAttempts: number;
  protected stopping = false;
  protected group: GroupConsumer | undefined;
  #committer: Committer | undefined;
  readonly #options: CommonOptions<Schema>;
  readonly #scope: string;
  /** The dead-letter topic without `TOPIC_PREFIX`, as `rt.bus` takes it. */
  readonly #dlqName: string;
  readonly #kind: "consumer" | "bulk-consumer";
  readonly #stopped = new AbortController();
  readonly #deadline = new AbortController();
  #loop: Promise<void> | undefined;
  #reporter: ReturnType<typeof setInterval> | undefined;

  /**
   * @param rt the runtime
   * @param options the definition
   * @param kind for the service name
   * @param limits when fetching pauses
   */
  constructor(
    rt: Runtime,
    options: CommonOptions<Schema>,
    kind: "consumer" | "bulk-consumer",
    limits: BufferLimits,
  ) {
    this.rt = rt;
    this.#options = options;
    this.consumer = options.name;
    this.#kind = kind;
    this.name = `${kind}:${options.name}`;
    // Full names (records and offsets carry them); rt.bus adds the prefix where it publishes.
    this.topic = rt.topic(options.topic);
    this.dlqTopic = `${this.topic}.dlq`;
    this.#dlqName = `${options.topic}.dlq`;
    this.#scope = options.group ?? options.name;
    this.groupId = `${rt.config.keyPrefix}.${this.#scope}`;
    this.maxAttempts = options.maxAttempts ?? 5;
    this.log = rt.log.child({ component: kind, consumer: options.name });
    this.metrics = consumerMetrics(rt);
    this.buffer = new RecordBuffer(
      limits,
      () => this.group?.pause([this.topic]),
      () => !this.stopping && this.group?.resume([this.topic]),
    );
  }

  /** Joins the group in the background and starts the handler loop. */
  start(): Promise<void> {
    if (this.group) return Promise.resolve();
    const group = this.rt.bus.consumer({
      groupId: this.groupId,
      topics: [this.topic],
      fromBeginning: this.#options.fromBeginning ?? true,
      sessionTimeoutMs: this.#options.sessionTimeoutMs,
      onRecords: (records) => {
        if (!this.stopping) this.buffer.push(records);
      },
      onAssignment: (partitions) => this.#assigned(partitions),
      onLeave: (reason) => this.log.info("left the consumer group", { reason }),
    });
    this.group = group;
    this.#committer = new Committer(group, this.log, COMMIT_INTERVAL_MS);
    this.#committer.start();
    this.metrics.sources.add(this);
    void this.#join(group);
    this.#reporter = setInterval(() => void this.#report(), REPORT_INTERVAL_MS);
    this.#loop = this.run().catch((err) => {
      this.log.error("consumer loop stopped on an unexpected error", { error: err });
    });
    return Promise.resolve();
  }

  /**
   * Stops fetching, lets the work in hand finish (handlers are aborted shortly before the
   * deadline; retries waiting for their backoff are handed back), commits what is done and
   * leaves the group. Records not handled go back to the group uncommitted.
   *
   * @param deadline epoch ms
   */
  async stop(deadline: number): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.#stopped.abort();
    try {
      this.group?.pause([this.topic]);
    } catch { /* not joined */ }
    this.buffer.wake();
    const abortAt = Math.max(0, deadline - Date.now() - HANDLER_GRACE_MS);
    const timer = setTimeout(() => this.#deadline.abort(), abortAt);
    if (!(await settleBy(this.#loop, deadline - 300))) {
      this.log.warn("work in hand did not finish before the deadline: handed back");
    }
    clearTimeout(timer);
    this.buffer.clear();
    this.#committer?.stop();
    await settleBy(this.#committer?.flush(), deadline);
    await settleBy(this.group?.stop(), deadline + 300);
    this.metrics.sources.delete(this);
    clearInterval(this.#reporter);
    await settleBy(
      clearStatus(this.rt.store, this.rt.config.keyPrefix, this.consumer, this.rt.instanceId).catch(
        () => {},
      ),
      deadline + 300,
    );
    this.log.info("consumer stopped");
  }

  /** @returns ok only while in the consumer group */
  check(): Promise<Check> {
    if (this.stopping) return Promise.resolve({ ok: false, detail: "stopping" });
    if (!this.group) return Promise.resolve({ ok: false, detail: "not started" });
    return this.group.check();
  }

  /** Writes this member's status for `GET /consumers` and the dashboard; best effort. */
  async #report(): Promise<void> {
    if (this.stopping) return;
    try {
      await reportStatus(this.rt.store, this.rt.config.keyPrefix, {
        name: this.consumer,
        kind: this.#kind,
        topic: this.topic,
        group: this.groupId,
        instance: this.rt.instanceId,
        in_group: this.inGroup(),
      }, this.lag());
    } catch { /* the store is down: readiness says so; the next report catches up */ }
  }

  /** @returns lag per owned partition */
  lag(): PartitionOffset[] {
    return this.group ? this.buffer.lag(this.group.highWatermarks()) : [];
  }

  /** @returns whether in the group */
  inGroup(): boolean {
    return this.group?.inGroup() ?? false;
  }

  /** The handler loop; returns once `stopping` is set and the work in hand is done. */
  protected abstract run(): Promise<void>;

  /** Aborted shortly before the shutdown deadline. */
  protected get signal(): AbortSignal {
    return this.#deadline.signal;
  }

  /**
   * What the context of every handler call holds.
   *
   * @param attempt 1 on the first try, 2 on the first retry…
   * @returns the runtime, logger, signal, attempt and `enqueue`
   */
  protected baseContext(attempt: number): BaseContext {
    return {
      rt: this.rt,
      log: this.log,
      signal: this.signal,
      attempt,
      enqueue: (task, input, options) => enqueueTask(this.rt, task, input, options),
    };
  }

  /**
   * Marker key builder for effects applied once, scoped to this consumer's group.
   *
   * @param identity the effect's identity
   * @param tag the hash tag of the key the effect writes
   * @returns the key
   */
  protected markerKey = (identity: string, tag: string): string =>
    onceMarkerKey(this.rt.config.keyPrefix, this.#scope, identity, tag);

  /**
   * Parses and validates a record's value.
   *
   * @param record the record
   * @returns the message, or the reason it is invalid
   */
  protected decode(record: BusRecord): Message<unknown> | SchemaError {
    if (record.value === null) return new SchemaError("The message has no value");
    let json: unknown;
    try {
      json = JSON.parse(record.value);
    } catch (err) {
      return new SchemaError(`The value is not JSON: ${(err as Error).message}`);
    }
    const result = safeParse(this.#options.schema, json);
    if (!result.success) {
      const detail = result.issues.slice(0, 3).map((issue) => {
        const path = v.getDotPath(issue);
        return path ? `${path}: ${issue.message}` : issue.message;
      }).join("; ");
      return new SchemaError(`The value does not match the schema: ${detail}`);
    }
    return {
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
      key: record.key,
      value: result.output,
      headers: record.headers,
      timestamp: record.timestamp,
      // The publisher's id when it set one (every publish of this program does, the same on
      // each retry), so a message the producer wrote twice is still applied once.
      id: record.headers[MESSAGE_ID_HEADER] ||
        `${record.topic}/${record.partition}/${record.offset}`,
    };
  }

  /**
   * Publishes dead letters, retrying while the bus is down.
   *
   * @param letters the messages and why
   * @returns false if shutdown came first (they are handed back instead)
   */
  protected async deadLetter(letters: DeadLetter[]): Promise<boolean> {
    if (letters.length === 0) return true;
    const messages = letters.map((l) => deadLetterMessage(l, this.consumer));
    for (let attempt = 1;; attempt++) {
      try {
        await this.rt.bus.publish(this.#dlqName, messages);
        break;
      } catch (err) {
        this.log.warn("dead-lettering failed; will retry", { error: err, count: letters.length });
        if (!(await this.sleep(this.backoff(attempt)))) return false;
      }
    }
    await countDeadLetters(this.rt.store, this.rt.config.keyPrefix, this.consumer, letters.length)
      .catch(() => {});
    for (const l of letters) {
      this.metrics.deadLettered.inc({
        consumer: this.consumer,
        topic: this.topic,
        reason: l.reason,
      });
      this.log.warn("message dead-lettered", {
        topic: l.record.topic,
        partition: l.record.partition,
        offset: l.record.offset,
        reason: l.reason,
        attempts: l.attempts,
        error: l.error,
      });
    }
    return true;
  }

  /**
   * Marks records handled; their offsets are committed soon (or at `flushCommits`) if their
   * partition is still owned.
   *
   * @param taken records with the epoch they were taken under
   */
  protected markDone(taken: Taken[]): void {
    const highest = new Map<string, Taken>();
    for (const t of taken) {
      const k = partitionKey(t.record);
      const known = highest.get(k);
      if (!known || known.record.offset < t.record.offset) highest.set(k, t);
    }
    for (const { record, epoch } of highest.values()) {
      const next = record.offset + 1;
      if (this.buffer.handled(record, next, epoch)) {
        this.#committer?.done({ topic: record.topic, partition: record.partition, offset: next });
      }
    }
  }

  /** Commits handled offsets now. */
  protected flushCommits(): Promise<void> {
    return this.#committer?.flush() ?? Promise.resolve();
  }

  /**
   * The delay before try `attempt + 1`: doubling from the initial backoff, capped, with jitter.
   *
   * @param attempt tries made so far (1 after the first failure)
   * @returns milliseconds
   */
  protected backoff(attempt: number): number {
    return backoff(attempt, {
      initialMs: this.#options.initialBackoffMs ?? 200,
      maxMs: this.#options.maxBackoffMs ?? 5_000,
    });
  }

  /**
   * Waits, unless shutdown begins.
   *
   * @param ms how long
   * @returns false when cut short by shutdown
   */
  protected sleep(ms: number): Promise<boolean> {
    if (this.stopping) return Promise.resolve(false);
    return delay(ms, { signal: this.#stopped.signal });
  }

  async #join(group: GroupConsumer): Promise<void> {
    // Unset: the bus's default (`KAFKA_PARTITIONS`).
    const partitions = this.#options.partitions;
    for (let attempt = 1; !this.stopping; attempt++) {
      try {
        const missing = await this.rt.bus.ensureTopics(
          [this.#options.topic, this.#dlqName],
          partitions,
        );
        // Topics that may not be created are named by the bus's readiness check, not retried
        // in a loop; this looks again now and then in case someone creates them.
        if (!missing.includes(this.topic)) break;
        await this.sleep(MISSING_TOPIC_RECHECK_MS);
      } catch (err) {
        this.log.warn("cannot create topics yet; will retry", { error: err });
        await this.sleep(backoff(attempt, { initialMs: 250, maxMs: 5_000 }));
      }
    }
    if (!this.stopping) await group.start();
  }

  #assigned(partitions: TopicPartition[]): void {
    const mine = partitions.filter((tp) => tp.topic === this.topic);
    const revoked = this.buffer.assign(mine);
    this.#committer?.forget(revoked);
    if (revoked.length) this.log.info("partitions revoked", { partitions: revoked });
    this.metrics.rebalances.inc({ consumer: this.consumer });
    this.log.info("partitions assigned", { partitions: mine.map((tp) => tp.partition) });
  }
}
