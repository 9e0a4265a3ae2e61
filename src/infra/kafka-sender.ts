/**
 * @module The publish path on Kafka: one sender per process that gathers the messages of
 * concurrent `publish()` calls into produce requests, one queue and at most one request in
 * flight per partition.
 *
 * Why not kafkajs's idempotent producer: it keeps sequence numbers per partition, takes its
 * lock per broker, and steps a partition's sequence back when a request fails. A request that
 * was written but whose answer was lost (a timeout, a dropped connection) then shares its
 * sequence number with the next request, which the broker acknowledges as a duplicate without
 * writing it: a 201 for a message that is not in the topic (`producer/sendMessages.js`; kafkajs
 * issue 1005). So the sender uses a plain producer with `acks: -1` and does its own retries,
 * and every message carries a `message-id` header set once, before the first attempt: a retry
 * that duplicates a message in the log duplicates its id too, and consumers apply a message
 * once per id (`src/consumers/base.ts`).
 *
 * What a caller is told: resolved = every message acknowledged by all in-sync replicas of its
 * partition. Rejected (`UnavailableError` at the deadline) = not acknowledged. A message still
 * queued when its caller's deadline passes is never sent. One already in flight may still be
 * written; when its acknowledgement arrives later it is logged (`landed after its caller was
 * answered`) with its id, and it changes nothing because its consumer recognises it by that id.
 */
import { type Kafka, type Message, Partitioners, type Producer } from "kafkajs";
import { backoff } from "../async/backoff.ts";
import { deadline } from "../async/deadline.ts";
import { delay } from "../async/delay.ts";
import type { Logger } from "../log.ts";
import { MESSAGE_ID_HEADER, type OutgoingMessage } from "./bus.ts";
import { UnavailableError } from "./store.ts";

/** Most bytes of messages one produce request carries for one partition. */
const MAX_BATCH_BYTES = 512 * 1024;
/** Most messages one produce request carries for one partition. */
const MAX_BATCH_COUNT = 1000;
/**
 * How long a partition leader may wait for its in-sync replicas before answering: longer than a
 * caller's deadline (so a write that completes a little late is reported as landed, not left
 * unknown) and shorter than kafkajs's request timeout (10 s), so the broker answers first.
 */
const ACK_TIMEOUT_MS = 8_000;
/** Backoff between attempts on one partition while it fails (doubling, capped). */
const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 500;
/** Broker errors caused by the messages themselves: retrying cannot help. */
const REQUEST_FAULTS = new Set([
  "MESSAGE_TOO_LARGE",
  "RECORD_LIST_TOO_LARGE",
  "INVALID_TOPIC_EXCEPTION",
  "INVALID_RECORD",
  "CORRUPT_MESSAGE",
]);
/** Broker errors that retrying cannot cure: the principal may not write there. */
const REFUSED = new Set(["TOPIC_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED"]);

/** What the sender needs from the bus. */
export interface SenderContext {
  /** The kafkajs client. */
  kafka: Kafka;
  log: Logger;
  /** Makes sure the topic exists (creating it) and tells its partition count, by the deadline. */
  partitionsOf(topic: string, deadline: number): Promise<number>;
  /** An error's message with secrets taken out. */
  describe(err: unknown): string;
}

interface _Request {
  topic: string;
  left: number;
  settled: boolean;
  resolve(): void;
  reject(err: Error): void;
}

interface _Entry {
  request: _Request;
  message: Message;
  bytes: number;
  deadline: number;
  /** Sent alone (its request only), after a batch with it was refused as too large. */
  solo: boolean;
}

interface _Partition {
  topic: string;
  partition: number;
  queue: _Entry[];
  sending: boolean;
  failures: number;
  /** Why the last attempt failed, for the error a caller gets at its deadline. */
  lastError: string | undefined;
}

class _Timeout extends Error {}

/**
 * The innermost cause of a kafkajs error.
 *
 * @param err what was thrown
 * @returns its root cause
 */
export function rootCause(err: unknown): any {
  let e: any = err;
  while (e && e.cause) e = e.cause;
  return e;
}

/**
 * Every broker error type in an error (kafkajs aggregates them per topic or partition).
 *
 * @param err what was thrown
 * @returns e.g. `["TOPIC_AUTHORIZATION_FAILED"]`
 */
export function errorTypes(err: unknown): string[] {
  const root = rootCause(err);
  const nested = Array.isArray(root?.errors) ? root.errors : [];
  return [root, ...nested].map((e: any) => e?.type).filter((t): t is string => !!t);
}

/**
 * One per KafkaBus. Publishing is `send(topic, messages, timeoutMs)`.
 *
 * @example
 * ```ts
 * const sender = new KafkaSender(ctx);
 * await sender.send("orders", [{ key: "o1", value: "{}" }], 5000);
 * ```
 */
export class KafkaSender {
  readonly #ctx: SenderContext;
  readonly #partitioner = Partitioners.DefaultPartitioner();
  readonly #partitions = new Map<string, _Partition>();
  #producer: Promise<Producer> | undefined;
  #closed = false;

  /** @param ctx the bus's parts */
  constructor(ctx: SenderContext) {
    this.#ctx = ctx;
  }

  /**
   * Publishes messages to one topic.
   *
   * @param topic the topic
   * @param messages what to publish
   * @param timeoutMs the caller's deadline, from now
   * @throws {UnavailableError} when not every message was acknowledged by the deadline
   */
  async send(topic: string, messages: OutgoingMessage[], timeoutMs: number): Promise<void> {
    if (messages.length === 0) return;
    if (this.#closed) throw new UnavailableError("kafka", "the bus is closed");
    const deadline = Date.now() + timeoutMs;
    const count = await this.#ctx.partitionsOf(topic, deadline);
    const metadata = Array.from({ length: count }, (_, partitionId) => ({
      partitionId,
      partitionErrorCode: 0,
      leader: 0,
      replicas: [],
      isr: [],
    }));
    let request!: _Request;
    const done = new Promise<void>((resolve, reject) => {
      request = { topic, left: messages.length, settled: false, resolve, reject };
    });
    const touched = new Set<_Partition>();
    for (const m of messages) {
      const headers = { ...m.headers };
      headers[MESSAGE_ID_HEADER] ??= crypto.randomUUID();
      const message: Message = { key: m.key ?? null, value: m.value, headers };
      const partition = this.#partitioner({ topic, partitionMetadata: metadata, message });
      const p = this.#partition(topic, partition);
      const bytes = m.value.length + (m.key?.length ?? 0) + 64;
      p.queue.push({ request, message, bytes, deadline, solo: false });
      touched.add(p);
    }
    const timer = setTimeout(() => {
      if (request.settled) return;
      request.settled = true;
      const why = [...touched].map((p) => p.lastError).find((e) => e !== undefined);
      request.reject(
        new UnavailableError(
          "kafka",
          `publishing to "${topic}" was not acknowledged within ${timeoutMs} ms${
            why ? ` (${why})` : ""
          }`,
        ),
      );
    }, Math.max(0, deadline - Date.now()));
    for (const p of touched) void this.#pump(p);
    try {
      await done;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Fails whatever is queued and disconnects the producer. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const p of this.#partitions.values()) {
      for (const e of p.queue.splice(0)) {
        this.#fail(e.request, new UnavailableError("kafka", "the bus is closing"));
      }
    }
    const producer = this.#producer;
    this.#producer = undefined;
    await producer?.then((p) => p.disconnect()).catch(() => {});
  }

  #partition(topic: string, partition: number): _Partition {
    const key = `${topic}\u0000${partition}`;
    let p = this.#partitions.get(key);
    if (!p) {
      p = { topic, partition, queue: [], sending: false, failures: 0, lastError: undefined };
      this.#partitions.set(key, p);
    }
    return p;
  }

  #fail(request: _Request, err: Error): void {
    if (request.settled) return;
    request.settled = true;
    request.reject(err);
  }

  /** Takes the next batch: messages of unsettled requests, in order, within the limits. */
  #take(p: _Partition): _Entry[] {
    p.queue = p.queue.filter((e) => !e.request.settled);
    const batch: _Entry[] = [];
    let bytes = 0;
    for (const e of p.queue) {
      if (batch.length > 0) {
        if (batch.length >= MAX_BATCH_COUNT || bytes + e.bytes > MAX_BATCH_BYTES) break;
        if ((e.solo || batch[0].solo) && e.request !== batch[0].request) break;
      }
      batch.push(e);
      bytes += e.bytes;
    }
    p.queue.splice(0, batch.length);
    return batch;
  }

  async #pump(p: _Partition): Promise<void> {
    if (p.sending) return;
    p.sending = true;
    try {
      while (!this.#closed) {
        const batch = this.#take(p);
        if (batch.length === 0) break;
        const outcome = await this.#attempt(p, batch);
        if (outcome === "retry") {
          // Back in front, in order; those whose caller has its answer are dropped unsent.
          p.queue.unshift(...batch.filter((e) => !e.request.settled));
          p.failures++;
          await delay(backoff(p.failures, { initialMs: RETRY_MIN_MS, maxMs: RETRY_MAX_MS }));
        } else {
          p.failures = 0;
        }
      }
    } finally {
      p.sending = false;
    }
  }

  /** One produce request for a batch of one partition. */
  async #attempt(p: _Partition, batch: _Entry[]): Promise<"done" | "retry"> {
    const until = Math.max(...batch.map((e) => e.deadline));
    const sending = this.#producerNow().then((producer) =>
      producer.send({
        topic: p.topic,
        acks: -1,
        timeout: ACK_TIMEOUT_MS,
        messages: batch.map((e) => ({ ...e.message, partition: p.partition })),
      })
    );
    try {
      await deadline(sending, until - Date.now(), () => new _Timeout());
      p.lastError = undefined;
      this.#acknowledged(p, batch);
      return "done";
    } catch (err) {
      if (err instanceof _Timeout) {
        // Every caller of the batch has been answered 503. The request may still be written:
        // if its acknowledgement comes, say so; the messages carry their ids.
        p.lastError = `no answer from the leader of partition ${p.partition}`;
        sending.then(() => this.#acknowledged(p, batch), () => {});
        return "done";
      }
      return this.#failed(p, batch, err);
    }
  }

  #acknowledged(p: _Partition, batch: _Entry[]): void {
    const late: string[] = [];
    for (const e of batch) {
      if (e.request.settled) late.push(String(e.message.headers?.[MESSAGE_ID_HEADER]));
      else if (--e.request.left === 0) {
        e.request.settled = true;
        e.request.resolve();
      }
    }
    if (late.length > 0) {
      this.#ctx.log.warn("messages landed after their caller was answered 503", {
        topic: p.topic,
        partition: p.partition,
        count: late.length,
        message_ids: late.slice(0, 20),
      });
    }
  }

  #failed(p: _Partition, batch: _Entry[], err: unknown): "done" | "retry" {
    const types = errorTypes(err);
    const detail = this.#ctx.describe(rootCause(err) ?? err);
    p.lastError = `partition ${p.partition}: ${detail}`;
    const abandoned = batch.filter((e) => e.request.settled);
    if (abandoned.length > 0) {
      // Their callers were answered 503 while this request was out; a failed request (a
      // timeout waiting for replicas, a connection lost after sending) may still have been
      // written. They are not sent again; if they landed they carry their ids.
      this.#ctx.log.warn("messages answered 503 may still have been written", {
        topic: p.topic,
        partition: p.partition,
        count: abandoned.length,
        message_ids: abandoned.slice(0, 20).map((e) =>
          String(e.message.headers?.[MESSAGE_ID_HEADER])
        ),
        error: detail,
      });
    }
    if (types.some((t) => REFUSED.has(t))) {
      const refused = new UnavailableError("kafka", `may not write to "${p.topic}": ${detail}`);
      for (const e of batch) this.#fail(e.request, refused);
      return "done";
    }
    if (types.some((t) => REQUEST_FAULTS.has(t))) {
      const requests = new Set(batch.map((e) => e.request));
      if (requests.size > 1) {
        // One request's messages may be what is too large: each goes on its own.
        for (const e of batch) e.solo = true;
        return "retry";
      }
      const fault = new Error(`Cannot publish to "${p.topic}": ${detail}`);
      for (const e of batch) this.#fail(e.request, fault);
      return "done";
    }
    // Anything kafkajs did not classify (a TypeError from a broker it half forgot, say) may
    // mean a broken client: the next attempt gets a new producer.
    if (!String(rootCause(err)?.name ?? "").startsWith("KafkaJS")) this.#dropProducer();
    return "retry";
  }

  #producerNow(): Promise<Producer> {
    if (!this.#producer) {
      const producer = this.#ctx.kafka.producer({
        idempotent: false,
        allowAutoTopicCreation: false,
        createPartitioner: Partitioners.DefaultPartitioner,
        // The sender retries, within each caller's deadline; kafkajs makes one attempt.
        retry: { retries: 0 },
      });
      const connecting = producer.connect().then(() => producer);
      connecting.catch(() => {
        if (this.#producer === connecting) this.#producer = undefined;
      });
      this.#producer = connecting;
    }
    return this.#producer;
  }

  #dropProducer(): void {
    const producer = this.#producer;
    this.#producer = undefined;
    producer?.then((p) => p.disconnect()).catch(() => {});
  }
}
