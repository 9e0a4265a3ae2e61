/**
 * @module The Bus port on Apache Kafka (kafkajs): one sender for publishing, an admin for topics
 * and readiness, and group consumers. The only importer of kafkajs.
 */
import {
  type Admin,
  type Consumer,
  type EachBatchPayload,
  Kafka,
  type KafkaMessage,
  logLevel,
  type SASLOptions,
} from "kafkajs";
import RequestQueue from "kafkajs/src/network/requestQueue/index.js";
import { backoff } from "../async/backoff.ts";
import { deadline } from "../async/deadline.ts";
import type { KafkaSettings } from "../config.ts";
import { errorTypes, KafkaSender } from "./kafka-sender.ts";
import type { Logger } from "../log.ts";
import type { Bus, OutgoingMessage } from "./bus.ts";
import type {
  BusRecord,
  GroupConsumer,
  GroupConsumerOptions,
  PartitionOffset,
  TopicPartition,
} from "./bus-consumer.ts";
import { type Check, UnavailableError } from "./store.ts";

/**
 * kafkajs 2.2.4's request queue re-arms a timer every millisecond for as long as a broker
 * connection is open, with nothing pending (its `throttledUntil` is -1, so the delay is negative):
 * an idle producer or consumer spins at 1 kHz per broker (tulios/kafkajs#1556, #1704; the open
 * fixes #1667, #1768). Its check is kept where it does something: a request waiting, or a
 * broker's throttle to wait out. A request that cannot go at once is pushed to `pending` and
 * schedules its own check; a reply checks the queue as before.
 */
const CHECK_PENDING_REQUESTS_INTERVAL = 10; // kafkajs's own constant
interface _RequestQueue {
  throttledUntil: number;
  throttleCheckTimeoutId: ReturnType<typeof setTimeout> | null;
  pending: unknown[];
  checkPendingRequests(): void;
}
(RequestQueue as unknown as { prototype: _RequestQueue & { scheduleCheckPendingRequests(): void } })
  .prototype.scheduleCheckPendingRequests = function (this: _RequestQueue) {
    if (this.throttleCheckTimeoutId) return;
    let scheduleAt = this.throttledUntil - Date.now();
    if (this.pending.length > 0) {
      scheduleAt = scheduleAt > 0 ? scheduleAt : CHECK_PENDING_REQUESTS_INTERVAL;
    } else if (scheduleAt <= 0) return;
    this.throttleCheckTimeoutId = setTimeout(() => {
      this.throttleCheckTimeoutId = null;
      this.checkPendingRequests();
    }, scheduleAt);
  };

/** Longest a publish may take before it fails with `UnavailableError` (default). */
const PUBLISH_TIMEOUT_MS = 5_000;
/** Longest topic creation may take. */
const ADMIN_TIMEOUT_MS = 15_000;
/** Readiness probe timeout, and how long its answer is reused. */
const CHECK_TIMEOUT_MS = 1_500;
const CHECK_CACHE_MS = 1_000;
const DEFAULT_PARTITIONS = 3;
const DEFAULT_SESSION_TIMEOUT_MS = 10_000;
const HEARTBEAT_INTERVAL_MS = 1_000;
/** How often a consumer asks the cluster for end offsets (for the lag metric). */
const HIGH_WATERMARK_REFRESH_MS = 5_000;
/** How long a topic's partition count is trusted before it is asked again. */
const PARTITIONS_TTL_MS = 60_000;
/** Broker errors that mean the principal may not create topics. */
const REFUSED = new Set(["TOPIC_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED"]);

/** Options of the Kafka bus. */
export interface KafkaBusOptions {
  /** Kafka client id (the deployment's service name). */
  clientId: string;
  /** TLS (PEM texts), SASL and the settings of created topics (`Config.kafka`). */
  settings?: Partial<KafkaSettings>;
  /** Longest a publish may take (default 5000 ms). */
  publishTimeoutMs?: number;
}

class _TimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what} timed out after ${ms} ms`);
    this.name = "TimeoutError";
  }
}

function _withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  return deadline(work, ms, () => new _TimeoutError(what, ms));
}

function _message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Replaces every occurrence of the secrets in a text. */
function _redactor(secrets: (string | undefined)[]): (text: string) => string {
  const list = secrets.filter((s): s is string => !!s && s.length >= 1);
  return (text) => list.reduce((t, secret) => t.replaceAll(secret, "***"), text);
}

/**
 * kafkajs logs go to our logger. Its ERRORs are mostly connection trouble it retries (and
 * that surfaces in our own errors and readiness), so each distinct one is logged as a warning
 * at most every 10 s.
 */
function _logCreator(log: Logger, redact: (text: string) => string) {
  const lastSeen = new Map<string, number>();
  return () => ({ level, log: entry }: { level: number; log: any }) => {
    const { message: raw, timestamp: _t, logger: _l, stack: _s, ...fields } = entry;
    const message = redact(String(raw));
    for (const [k, v] of Object.entries(fields)) {
      if (typeof v === "string") fields[k] = redact(v);
    }
    if (level > logLevel.ERROR) return log.debug(message, fields);
    const now = Date.now();
    if (now - (lastSeen.get(message) ?? 0) < 10_000) return;
    if (lastSeen.size > 1000) lastSeen.clear();
    lastSeen.set(message, now);
    log.warn(message, fields);
  };
}

/**
 * The Bus on a Kafka cluster. Publishing goes through one `KafkaSender` (see
 * `kafka-sender.ts` for what an acknowledgement means); topics are created with
 * `KAFKA_PARTITIONS`, `KAFKA_REPLICATION_FACTOR` (default min(3, brokers)) and
 * `min.insync.replicas` = RF − 1 (at least 1), never by the brokers' auto-creation. Without
 * the right to create topics the bus uses those that exist and names a missing one in
 * `check()`.
 *
 * @example
 * ```ts
 * const bus = new KafkaBus(["127.0.0.1:9092"], log, { clientId: "svc" });
 * await bus.publish("orders", [{ key: "o1", value: "{}" }]);
 * ```
 */
export class KafkaBus implements Bus {
  readonly kind = "kafka" as const;
  readonly #kafka: Kafka;
  readonly #log: Logger;
  readonly #redact: (text: string) => string;
  readonly #partitionCount: number;
  readonly #replicationFactor: number | undefined;
  readonly #publishTimeoutMs: number;
  readonly #sender: KafkaSender;
  #admin: Promise<Admin> | undefined;
  /** Why the last connection attempt failed (a probe that times out says it). */
  #lastFailure: string | undefined;
  #checked: { at: number; result: Check } | undefined;
  #checking: Promise<Check> | undefined;
  readonly #knownTopics = new Set<string>();
  /** Topics the program needs that do not exist and may not be created, and why. */
  readonly #missingTopics = new Map<string, string>();
  readonly #partitionsOf = new Map<string, { at: number; count: Promise<number> }>();
  readonly #consumers = new Set<KafkaGroupConsumer>();
  #closed = false;

  /**
   * @param brokers `host:port` list
   * @param log the logger
   * @param opts client id, security and topic settings
   */
  constructor(brokers: string[], log: Logger, opts: KafkaBusOptions) {
    this.#log = log.child({ component: "kafka" });
    const settings = opts.settings ?? {};
    this.#redact = _redactor([settings.sasl?.password]);
    this.#partitionCount = settings.partitions ?? DEFAULT_PARTITIONS;
    this.#replicationFactor = settings.replicationFactor;
    this.#publishTimeoutMs = opts.publishTimeoutMs ?? PUBLISH_TIMEOUT_MS;
    this.#kafka = new Kafka({
      brokers,
      clientId: opts.clientId,
      ssl: settings.ssl ? { ...settings.ssl } : undefined,
      sasl: settings.sasl
        ? {
          mechanism: settings.sasl.mechanism,
          username: settings.sasl.username,
          password: settings.sasl.password,
        } as SASLOptions
        : undefined,
      connectionTimeout: 1_000,
      authenticationTimeout: 5_000,
      requestTimeout: 10_000,
      retry: { initialRetryTime: 200, maxRetryTime: 2_000, retries: 5 },
      logLevel: logLevel.WARN,
      logCreator: _logCreator(this.#log, this.#redact),
    });
    this.#sender = new KafkaSender({
      kafka: this.#kafka,
      log: this.#log,
      partitionsOf: (topic, deadline) => this.#topicPartitions(topic, deadline),
      describe: (err) => this.#redact(_message(err)),
    });
  }

  /**
   * Publishes to one topic; resolves once every message is acknowledged by all in-sync
   * replicas of its partition.
   *
   * @param topic the topic
   * @param messages what to publish
   * @throws {UnavailableError} when not acknowledged within the publish timeout
   */
  publish(topic: string, messages: OutgoingMessage[]): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new UnavailableError("kafka", "the bus is closed"));
    }
    return this.#sender.send(topic, messages, this.#publishTimeoutMs);
  }

  /**
   * Creates missing topics with the configured partitions, replication factor and
   * `min.insync.replicas`. Topics the principal may not create are not retried: they are
   * returned, and named by `check()` until they exist.
   *
   * @param topics names
   * @param partitions partitions of each new topic (default `KAFKA_PARTITIONS`)
   * @returns the topics that do not exist and may not be created
   * @throws {UnavailableError} when the cluster cannot be reached or refuses for another reason
   */
  async ensureTopics(topics: string[], partitions = this.#partitionCount): Promise<string[]> {
    const wanted = [...new Set(topics)].filter((t) => !this.#knownTopics.has(t));
    if (wanted.length === 0) return [];
    let missing: string[];
    let refused: string | undefined;
    try {
      const admin = await this.#getAdmin();
      const existing = new Set(
        await _withTimeout(admin.listTopics(), ADMIN_TIMEOUT_MS, "Listing topics"),
      );
      missing = wanted.filter((t) => !existing.has(t));
      if (missing.length > 0) {
        const rf = this.#replicationFactor ?? await this.#defaultReplicationFactor(admin);
        try {
          await _withTimeout(
            admin.createTopics({
              topics: missing.map((topic) => ({
                topic,
                numPartitions: partitions,
                replicationFactor: rf,
                configEntries: [{
                  name: "min.insync.replicas",
                  value: String(Math.max(1, rf - 1)),
                }],
              })),
              // kafkajs's own wait asks one broker, whose metadata may lag the controller's
              // ("does not host this topic-partition"): `#untilServed` waits instead.
              waitForLeaders: false,
              timeout: ADMIN_TIMEOUT_MS,
            }),
            ADMIN_TIMEOUT_MS + 1_000,
            "Creating topics",
          );
          await this.#untilServed(admin, missing);
          missing = [];
        } catch (err) {
          const types = errorTypes(err);
          if (types.length > 0 && types.every((t) => t === "TOPIC_ALREADY_EXISTS")) missing = [];
          else if (types.some((t) => REFUSED.has(t))) refused = this.#redact(_message(err));
          else throw err;
        }
      }
    } catch (err) {
      this.#dropAdmin();
      throw new UnavailableError("kafka", `creating topics failed: ${this.#redact(_message(err))}`);
    }
    for (const t of wanted) {
      if (missing.includes(t)) {
        if (!this.#missingTopics.has(t)) {
          this.#log.warn("a topic does not exist and may not be created", { topic: t, refused });
        }
        this.#missingTopics.set(t, `topic "${t}" does not exist and may not be created`);
      } else {
        this.#knownTopics.add(t);
        this.#missingTopics.delete(t);
      }
    }
    return missing;
  }

  /**
   * Whether a broker answers a metadata request now and every topic the program needs
   * exists; the answer is reused for a second so frequent probes cost one request.
   *
   * @returns ok, or the reason it is not
   */
  check(): Promise<Check> {
    if (this.#checked && Date.now() - this.#checked.at < CHECK_CACHE_MS) {
      return Promise.resolve(this.#checked.result);
    }
    this.#checking ??= this.#probe().then((result) => {
      this.#checked = { at: Date.now(), result };
      this.#checking = undefined;
      return result;
    });
    return this.#checking;
  }

  /**
   * Creates a group consumer on this cluster.
   *
   * @param options group, topics and record sink
   * @returns the consumer, not started
   */
  consumer(options: GroupConsumerOptions): KafkaGroupConsumer {
    const consumer = new KafkaGroupConsumer(
      this.#kafka,
      this.#log,
      options,
      () => this.#consumers.delete(consumer),
      (topic) => this.#highWatermarks(topic),
    );
    this.#consumers.add(consumer);
    return consumer;
  }

  /** Stops consumers, then disconnects the producer and admin. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#consumers].map((c) => c.stop()));
    const admin = this.#admin;
    this.#admin = undefined;
    await Promise.allSettled([
      _withTimeout(this.#sender.close(), 3_000, "Producer disconnect"),
      admin?.then((a) => _withTimeout(a.disconnect(), 3_000, "Admin disconnect")),
    ]);
  }

  /** The partition count of a topic the program publishes to, creating the topic if needed. */
  #topicPartitions(topic: string, deadline: number): Promise<number> {
    const cached = this.#partitionsOf.get(topic);
    if (cached && Date.now() - cached.at < PARTITIONS_TTL_MS) return cached.count;
    const count = (async () => {
      const left = () => Math.max(1, deadline - Date.now());
      try {
        // In the try: a timeout here is the broker being unreachable too (a 503, not a 500).
        const missing = await _withTimeout(
          this.ensureTopics([topic]),
          left(),
          "Creating the topic",
        );
        if (missing.length > 0) {
          throw new UnavailableError("kafka", this.#missingTopics.get(topic) ?? `no "${topic}"`);
        }
        const admin = await _withTimeout(this.#getAdmin(), left(), "Connecting");
        const meta = await _withTimeout(
          admin.fetchTopicMetadata({ topics: [topic] }),
          left(),
          "Reading the topic's metadata",
        );
        return meta.topics[0].partitions.length;
      } catch (err) {
        if (err instanceof UnavailableError) throw err;
        this.#dropAdmin();
        const why = this.#redact(_message(err));
        const last = this.#lastFailure;
        throw new UnavailableError("kafka", last && last !== why ? `${why} (${last})` : why);
      }
    })();
    const entry = { at: Date.now(), count };
    this.#partitionsOf.set(topic, entry);
    count.catch(() => {
      if (this.#partitionsOf.get(topic) === entry) this.#partitionsOf.delete(topic);
    });
    // A refresh that fails keeps the last known count.
    if (cached) return count.catch(() => cached.count);
    return count;
  }

  /**
   * Waits until new topics answer ListOffsets on their leaders: right after creation the
   * brokers' metadata may lag, and a consumer that starts then crashes once on
   * `NOT_LEADER_OR_FOLLOWER` (kafkajs restarts it, but that is a needless rebalance).
   */
  async #untilServed(admin: Admin, topics: string[]): Promise<void> {
    const until = Date.now() + 10_000;
    for (const topic of topics) {
      while (true) {
        try {
          await _withTimeout(admin.fetchTopicOffsets(topic), CHECK_TIMEOUT_MS, "Listing offsets");
          break;
        } catch (err) {
          if (Date.now() > until) {
            this.#log.debug("a new topic is not served yet", { topic, error: err });
            return;
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
  }

  async #defaultReplicationFactor(admin: Admin): Promise<number> {
    const cluster = await _withTimeout(admin.describeCluster(), ADMIN_TIMEOUT_MS, "Describing");
    return Math.max(1, Math.min(3, cluster.brokers.length));
  }

  async #highWatermarks(topic: string): Promise<PartitionOffset[]> {
    try {
      const admin = await _withTimeout(this.#getAdmin(), CHECK_TIMEOUT_MS, "Connecting");
      const offsets = await _withTimeout(
        admin.fetchTopicOffsets(topic),
        CHECK_TIMEOUT_MS,
        "Fetching offsets",
      );
      return offsets.map((o) => ({ topic, partition: o.partition, offset: Number(o.high) }));
    } catch (err) {
      this.#dropAdmin();
      throw err;
    }
  }

  async #probe(): Promise<Check> {
    try {
      const admin = await _withTimeout(this.#getAdmin(), CHECK_TIMEOUT_MS, "Connecting");
      await _withTimeout(admin.describeCluster(), CHECK_TIMEOUT_MS, "Describing the cluster");
    } catch (err) {
      const why = this.#redact(_message(err));
      const last = this.#lastFailure;
      this.#dropAdmin();
      return { ok: false, detail: last && last !== why ? `${why}; last error: ${last}` : why };
    }
    if (this.#missingTopics.size > 0) {
      // Someone may have created them since.
      try {
        const admin = await _withTimeout(this.#getAdmin(), CHECK_TIMEOUT_MS, "Connecting");
        const now = await _withTimeout(admin.listTopics(), CHECK_TIMEOUT_MS, "Listing topics");
        for (const t of now) {
          if (this.#missingTopics.delete(t)) this.#knownTopics.add(t);
        }
      } catch { /* the names stand until a probe can look */ }
    }
    if (this.#missingTopics.size > 0) {
      return { ok: false, detail: [...this.#missingTopics.values()].join("; ") };
    }
    return { ok: true };
  }

  #getAdmin(): Promise<Admin> {
    if (!this.#admin) {
      const admin = this.#kafka.admin({
        retry: { initialRetryTime: 100, maxRetryTime: 500, retries: 1 },
      });
      const connecting = admin.connect().then(() => {
        this.#lastFailure = undefined;
        return admin;
      });
      connecting.catch((err) => {
        this.#lastFailure = this.#redact(_message(err));
        if (this.#admin === connecting) this.#admin = undefined;
      });
      this.#admin = connecting;
    }
    return this.#admin;
  }

  #dropAdmin(): void {
    const admin = this.#admin;
    this.#admin = undefined;
    admin?.then((a) => a.disconnect()).catch(() => {});
  }
}

function _toRecord(topic: string, partition: number, m: KafkaMessage): BusRecord {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.headers ?? {})) {
    if (v === undefined) continue;
    headers[k] = Array.isArray(v) ? String(v[v.length - 1]) : String(v);
  }
  const key = m.key ? m.key.toString("utf8") : null;
  const value = m.value ? m.value.toString("utf8") : null;
  return {
    topic,
    partition,
    offset: Number(m.offset),
    key,
    value,
    headers,
    timestamp: Number(m.timestamp),
    size: (m.value?.length ?? 0) + (m.key?.length ?? 0),
  };
}

/**
 * A kafkajs group consumer that hands fetched batches to a sink and commits only what it is
 * told to. kafkajs's own fetch loop keeps running (and heartbeating) while the sink's work
 * goes on; a crash that kafkajs does not restart by itself is restarted here.
 */
export class KafkaGroupConsumer implements GroupConsumer {
  readonly #kafka: Kafka;
  readonly #log: Logger;
  readonly #options: GroupConsumerOptions;
  readonly #onStopped: () => void;
  #consumer: Consumer | undefined;
  #assigned: TopicPartition[] = [];
  #inGroup = false;
  #lastHeartbeat = 0;
  #running = false;
  #paused = new Set<string>();
  #highWatermarks = new Map<string, PartitionOffset>();
  #restartTimer: ReturnType<typeof setTimeout> | undefined;
  #failures = 0;
  readonly #fetchHighWatermarks: (topic: string) => Promise<PartitionOffset[]>;
  #refreshedAt = 0;

  /**
   * @param kafka the kafkajs client
   * @param log the logger
   * @param options group, topics and sink
   * @param onStopped called once stopped
   * @param fetchHighWatermarks asks the cluster for a topic's end offsets
   */
  constructor(
    kafka: Kafka,
    log: Logger,
    options: GroupConsumerOptions,
    onStopped: () => void,
    fetchHighWatermarks: (topic: string) => Promise<PartitionOffset[]>,
  ) {
    this.#kafka = kafka;
    this.#log = log.child({ group: options.groupId });
    this.#options = options;
    this.#onStopped = onStopped;
    this.#fetchHighWatermarks = fetchHighWatermarks;
  }

  /** Starts joining in the background. */
  start(): Promise<void> {
    if (this.#running) return Promise.resolve();
    this.#running = true;
    void this.#launch();
    return Promise.resolve();
  }

  /**
   * Commits offsets of owned partitions.
   *
   * @param offsets next offsets to read
   * @returns those committed
   */
  async commit(offsets: PartitionOffset[]): Promise<PartitionOffset[]> {
    const consumer = this.#consumer;
    if (!consumer || !this.#inGroup) return [];
    const owned = new Set(this.#assigned.map((tp) => `${tp.topic}/${tp.partition}`));
    const mine = offsets.filter((o) => owned.has(`${o.topic}/${o.partition}`));
    if (mine.length === 0) return [];
    await _withTimeout(
      consumer.commitOffsets(
        mine.map((o) => ({ topic: o.topic, partition: o.partition, offset: String(o.offset) })),
      ),
      10_000,
      "Committing offsets",
    );
    return mine;
  }

  /** @param topics topics to stop fetching */
  pause(topics: string[]): void {
    for (const t of topics) this.#paused.add(t);
    this.#applyPauses();
  }

  /** @param topics topics to fetch again */
  resume(topics: string[]): void {
    const back = topics.filter((t) => this.#paused.delete(t));
    if (back.length === 0) return;
    try {
      this.#consumer?.resume(back.map((topic) => ({ topic })));
    } catch { /* not running yet: nothing is paused there */ }
  }

  /** @returns owned partitions */
  assignment(): TopicPartition[] {
    return this.#inGroup ? [...this.#assigned] : [];
  }

  /** @returns whether in the group (joined, and heartbeating within the session timeout) */
  inGroup(): boolean {
    const session = this.#options.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS;
    return this.#inGroup && Date.now() - this.#lastHeartbeat < session;
  }

  /**
   * The high watermarks seen in fetches, refreshed from the cluster every few seconds (a
   * paused partition is not fetched, yet its lag grows).
   *
   * @returns the last high watermark known per owned partition
   */
  highWatermarks(): PartitionOffset[] {
    if (this.#inGroup && Date.now() - this.#refreshedAt > HIGH_WATERMARK_REFRESH_MS) {
      this.#refreshedAt = Date.now();
      for (const topic of this.#options.topics) {
        this.#fetchHighWatermarks(topic).then((offsets) => {
          for (const o of offsets) this.#seen(o);
        }).catch(() => {});
      }
    }
    return this.assignment().flatMap((tp) => {
      const hw = this.#highWatermarks.get(`${tp.topic}/${tp.partition}`);
      return hw ? [hw] : [];
    });
  }

  /** @returns ok while in the group */
  check(): Promise<Check> {
    if (this.inGroup()) return Promise.resolve({ ok: true });
    return Promise.resolve({
      ok: false,
      detail: this.#inGroup ? "no heartbeat within the session timeout" : "not in its group",
    });
  }

  /** Leaves the group and disconnects. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    clearTimeout(this.#restartTimer);
    // A launch in progress notices it was replaced and disconnects by itself.
    const consumer = this.#consumer;
    this.#consumer = undefined;
    if (consumer) {
      await _withTimeout(consumer.disconnect(), 10_000, "Leaving the group").catch((err) =>
        this.#log.warn("consumer did not leave its group cleanly", { error: err })
      );
    }
    this.#setOut("stopped");
    this.#onStopped();
  }

  #setOut(reason: string): void {
    const was = this.#inGroup;
    this.#inGroup = false;
    this.#assigned = [];
    if (was) this.#options.onLeave?.(reason);
  }

  #seen(hw: PartitionOffset): void {
    const k = `${hw.topic}/${hw.partition}`;
    if ((this.#highWatermarks.get(k)?.offset ?? -1) < hw.offset) this.#highWatermarks.set(k, hw);
  }

  #applyPauses(): void {
    if (!this.#consumer || this.#paused.size === 0) return;
    try {
      this.#consumer.pause([...this.#paused].map((topic) => ({ topic })));
    } catch { /* not running yet: re-applied on join */ }
  }

  async #launch(): Promise<void> {
    const o = this.#options;
    const session = o.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS;
    const consumer = this.#kafka.consumer({
      groupId: o.groupId,
      sessionTimeout: session,
      rebalanceTimeout: Math.max(session, 15_000),
      heartbeatInterval: Math.min(HEARTBEAT_INTERVAL_MS, Math.floor(session / 3)),
      // Also how long kafkajs sleeps while every partition is paused: short, so a resume
      // after backpressure fetches again at once.
      maxWaitTimeInMs: o.maxWaitMs ?? 100,
      maxBytesPerPartition: o.maxBytesPerPartition ?? 1024 * 1024,
      allowAutoTopicCreation: false,
      // Few retries (about 4 s in all), then kafkajs restarts the consumer, which finds the
      // group coordinator again: kafkajs retries a dead coordinator's address for as long as
      // its retries last (with 8 retries a lost broker stopped consumption for about 30 s).
      retry: {
        initialRetryTime: 300,
        maxRetryTime: 2_000,
        retries: 4,
        restartOnFailure: () => Promise.resolve(this.#running),
      },
    });
    this.#consumer = consumer;
    const { GROUP_JOIN, HEARTBEAT, CRASH, STOP, REBALANCING, END_BATCH_PROCESS } = consumer.events;
    consumer.on(GROUP_JOIN, ({ payload }) => {
      if (this.#consumer !== consumer) return;
      this.#failures = 0;
      this.#assigned = Object.entries(payload.memberAssignment).flatMap(([topic, partitions]) =>
        (partitions as number[]).map((partition) => ({ topic, partition }))
      );
      this.#inGroup = true;
      this.#lastHeartbeat = Date.now();
      this.#applyPauses();
      this.#log.debug("joined its group", { assignment: payload.memberAssignment });
      o.onAssignment?.([...this.#assigned]);
    });
    consumer.on(HEARTBEAT, () => {
      if (this.#consumer === consumer) this.#lastHeartbeat = Date.now();
    });
    consumer.on(REBALANCING, () => this.#log.debug("group is rebalancing"));
    consumer.on(END_BATCH_PROCESS, ({ payload }) => {
      this.#seen({
        topic: payload.topic,
        partition: payload.partition,
        offset: Number(payload.highWatermark),
      });
    });
    consumer.on(CRASH, ({ payload }) => {
      if (this.#consumer !== consumer) return;
      this.#log.warn("consumer crashed", { error: payload.error, restart: payload.restart });
      this.#setOut("crashed");
      o.onAssignment?.([]);
      if (!payload.restart) this.#relaunch(consumer);
    });
    consumer.on(STOP, () => {
      if (this.#consumer === consumer) this.#setOut("stopped");
    });
    try {
      const replaced = () => {
        if (this.#consumer === consumer) return false;
        consumer.disconnect().catch(() => {});
        return true;
      };
      await consumer.connect();
      if (replaced()) return;
      await consumer.subscribe({ topics: o.topics, fromBeginning: o.fromBeginning ?? true });
      if (replaced()) return;
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: true,
        partitionsConsumedConcurrently: 1,
        eachBatch: (payload: EachBatchPayload) => {
          const { batch } = payload;
          if (this.#consumer !== consumer || batch.messages.length === 0) {
            return Promise.resolve();
          }
          const records = batch.messages.map((m) => _toRecord(batch.topic, batch.partition, m));
          o.onRecords(records);
          return Promise.resolve();
        },
      });
      replaced();
    } catch (err) {
      this.#log.warn("consumer could not start", { error: err });
      this.#relaunch(consumer);
    }
  }

  /** Replaces a consumer that kafkajs gave up on, with growing delays while it keeps failing. */
  #relaunch(failed: Consumer): void {
    if (!this.#running || this.#consumer !== failed) return;
    this.#consumer = undefined;
    this.#setOut("restarting");
    failed.disconnect().catch(() => {});
    const delay = backoff(++this.#failures, { initialMs: 500, maxMs: 10_000 });
    this.#restartTimer = setTimeout(() => {
      if (this.#running) void this.#launch();
    }, delay);
  }
}
