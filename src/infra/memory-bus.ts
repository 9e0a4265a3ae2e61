/**
 * @module The embedded bus: Kafka-like topics, key-hashed partitions, offsets, retained records
 * and consumer groups (assignment across members, committed offsets, redelivery after a member
 * leaves or dies), all in process.
 */
import { IdleWaiters } from "../async/idle.ts";
import type { Bus, OutgoingMessage } from "./bus.ts";
import {
  type BusRecord,
  type GroupConsumer,
  type GroupConsumerOptions,
  partitionKey,
  type PartitionOffset,
  type TopicPartition,
} from "./bus-consumer.ts";
import { type Check, UnavailableError } from "./store.ts";

const DEFAULT_PARTITIONS = 3;
const DEFAULT_SESSION_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_WAIT_MS = 500;
const DEFAULT_MAX_BYTES_PER_PARTITION = 1024 * 1024;
/** Most bytes of records the bus holds by default (keys, values and headers). */
export const DEFAULT_BUS_MAX_BYTES = 64 * 1024 * 1024;
const ENCODER = new TextEncoder();

interface _Stored {
  key: string | null;
  value: string;
  headers: Record<string, string>;
  timestamp: number;
  size: number;
}

class _Partition {
  /** Offset of `records[0]`; grows when old records are dropped by retention. */
  base = 0;
  records: _Stored[] = [];
  bytes = 0;
  get end(): number {
    return this.base + this.records.length;
  }
}

class _Topic {
  next = 0;
  constructor(readonly name: string, readonly partitions: _Partition[]) {}
}

/**
 * Kafka's murmur2 (the Java client's and kafkajs's default partitioner), so a key lands on the
 * same partition number as it would on a real broker with as many partitions.
 *
 * @param data the key's bytes
 * @returns the 32-bit hash
 */
export function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  const length = data.length;
  let h = (0x9747b28c ^ length) | 0;
  const length4 = length >> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = (data[i4] & 0xff) | ((data[i4 + 1] & 0xff) << 8) | ((data[i4 + 2] & 0xff) << 16) |
      ((data[i4 + 3] & 0xff) << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m);
    h ^= k;
  }
  const tail = length & ~3;
  switch (length & 3) {
    case 3:
      h ^= (data[tail + 2] & 0xff) << 16;
    // falls through
    case 2:
      h ^= (data[tail + 1] & 0xff) << 8;
    // falls through
    case 1:
      h ^= data[tail] & 0xff;
      h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** One consumer group: its members, generation, owners and committed offsets. */
class _Group {
  generation = 0;
  readonly members = new Map<string, MemoryGroupConsumer>();
  readonly committed = new Map<string, number>();
  readonly owners = new Map<string, string>();
  /** Every topic a member of the group ever read: its records are kept until it commits them. */
  readonly topics = new Set<string>();
  constructor(readonly id: string) {}
}

function _size(message: OutgoingMessage): number {
  let size = message.value.length + (message.key?.length ?? 0);
  for (const [k, v] of Object.entries(message.headers ?? {})) size += k.length + v.length;
  return size;
}

/** Options of the embedded bus. */
export interface MemoryBusOptions {
  /** Partitions of a topic created on first use (Kafka's `num.partitions`); default 3. */
  defaultPartitions?: number;
  /** Most records kept per partition; older ones are dropped (Kafka's retention). */
  retainRecords?: number;
  /**
   * Most bytes of records held, over every topic; a publish that would pass it answers
   * unavailable (503) until consumers commit. Default {@link DEFAULT_BUS_MAX_BYTES}.
   */
  maxBytes?: number;
}

/**
 * The embedded, in-process bus with Kafka's semantics, for running without a broker.
 *
 * @example
 * ```ts
 * const bus = new MemoryBus();
 * await bus.publish("orders", [{ key: "o1", value: "{}" }]);
 * ```
 */
export class MemoryBus implements Bus {
  readonly kind = "memory" as const;
  readonly #topics = new Map<string, _Topic>();
  readonly #groups = new Map<string, _Group>();
  readonly #consumers = new Set<MemoryGroupConsumer>();
  readonly #waiters = new Set<() => void>();
  readonly #defaultPartitions: number;
  readonly #retain: number;
  readonly #maxBytes: number;
  #bytes = 0;
  #closed = false;

  /** @param options default partition count, retention and byte bound */
  constructor(options: MemoryBusOptions = {}) {
    this.#defaultPartitions = options.defaultPartitions ?? DEFAULT_PARTITIONS;
    this.#retain = options.retainRecords ?? 5_000_000;
    this.#maxBytes = options.maxBytes ?? DEFAULT_BUS_MAX_BYTES;
  }

  /** Bytes of the records held now (keys, values, headers). */
  get retainedBytes(): number {
    return this.#bytes;
  }

  /**
   * Appends messages to a topic (created with the default partition count if absent); a key
   * picks the partition by murmur2, no key goes round-robin. All or none: a batch that would
   * pass the byte bound, even after dropping what every reading group has committed, is
   * refused.
   *
   * @param topic the topic
   * @param messages what to append
   * @throws {UnavailableError} (as a rejection) while the bus is full
   */
  publish(topic: string, messages: OutgoingMessage[]): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("The embedded bus is closed"));
    const batch = messages.reduce((n, m) => n + _size(m), 0);
    if (this.#bytes + batch > this.#maxBytes) this.#reclaim();
    if (this.#bytes > 0 && this.#bytes + batch > this.#maxBytes) {
      return Promise.reject(
        new UnavailableError(
          "kafka",
          `the embedded bus is full (${this.#bytes} of ${this.#maxBytes} bytes held until ` +
            "consumers commit them); retry later",
        ),
      );
    }
    const t = this.#topic(topic);
    const now = Date.now();
    for (const message of messages) {
      const n = t.partitions.length;
      const index = message.key == null
        ? t.next++ % n
        : (murmur2(ENCODER.encode(message.key)) & 0x7fffffff) % n;
      const p = t.partitions[index];
      p.records.push({
        key: message.key ?? null,
        value: message.value,
        headers: { ...message.headers },
        timestamp: now,
        size: _size(message),
      });
      p.bytes += p.records[p.records.length - 1].size;
      this.#bytes += p.records[p.records.length - 1].size;
      if (p.records.length > this.#retain) this.#drop(p, p.records.length - this.#retain);
    }
    this.#wake();
    return Promise.resolve();
  }

  #drop(p: _Partition, count: number): void {
    let bytes = 0;
    for (let i = 0; i < count; i++) bytes += p.records[i].size;
    p.bytes -= bytes;
    this.#bytes -= bytes;
    p.records.splice(0, count);
    p.base += count;
  }

  /**
   * Drops the records every group that reads their topic has committed (topics no group reads
   * keep theirs, like a broker's retention).
   */
  #reclaim(): void {
    for (const t of this.#topics.values()) {
      const groups = [...this.#groups.values()].filter((g) => g.topics.has(t.name));
      if (groups.length === 0) continue;
      t.partitions.forEach((p, partition) => {
        const key = partitionKey({ topic: t.name, partition });
        const upTo = Math.min(...groups.map((g) => g.committed.get(key) ?? p.base), p.end);
        if (upTo > p.base) this.#drop(p, upTo - p.base);
      });
    }
  }

  /**
   * @internal After a commit: gives memory back once the bus holds a quarter of its bound (below
   * that, consumed records stay readable, as on a broker).
   */
  _committed(): void {
    if (this.#bytes > this.#maxBytes / 4) this.#reclaim();
  }

  /**
   * Creates the topics that do not exist yet.
   *
   * @param topics names
   * @param partitions partition count of new topics (default 3)
   * @returns none missing: the embedded bus may always create
   */
  ensureTopics(topics: string[], partitions = this.#defaultPartitions): Promise<string[]> {
    for (const name of topics) this.#topic(name, partitions);
    return Promise.resolve([]);
  }

  /** Always ok: the embedded bus lives in the process. */
  check(): Promise<Check> {
    return Promise.resolve({ ok: true });
  }

  /**
   * Creates a member of a consumer group.
   *
   * @param options group, topics and record sink
   * @returns the consumer, not started
   */
  consumer(options: GroupConsumerOptions): MemoryGroupConsumer {
    const consumer = new MemoryGroupConsumer(this, options);
    this.#consumers.add(consumer);
    return consumer;
  }

  /** Stops every consumer; later publishes fail. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#consumers].map((c) => c.stop()));
    this.#wake();
  }

  /**
   * Records of a partition from an offset, for tests and tools.
   *
   * @param topic the topic
   * @param partition the partition
   * @param from first offset
   * @returns the records still retained from `from` on
   */
  read(topic: string, partition: number, from = 0): BusRecord[] {
    const p = this.#topics.get(topic)?.partitions[partition];
    if (!p) return [];
    return this._slice(topic, partition, p, Math.max(from, p.base), Infinity, Infinity);
  }

  /**
   * Every retained record of a topic, partition by partition (tests, tools).
   *
   * @param topic the topic
   * @returns its records
   */
  readAll(topic: string): BusRecord[] {
    const t = this.#topics.get(topic);
    return t ? t.partitions.flatMap((_, i) => this.read(topic, i)) : [];
  }

  /**
   * Committed offsets of a group (tests, tools).
   *
   * @param groupId the group
   * @returns the committed offset of each partition that has one
   */
  committed(groupId: string): PartitionOffset[] {
    const group = this.#groups.get(groupId);
    if (!group) return [];
    return [...group.committed].map(([k, offset]) => {
      const i = k.lastIndexOf("/");
      return { topic: k.slice(0, i), partition: Number(k.slice(i + 1)), offset };
    });
  }

  // --- used by MemoryGroupConsumer -----------------------------------------------------------

  /** @internal */
  _partitions(topic: string): _Partition[] {
    return this.#topic(topic).partitions;
  }

  /** @internal */
  _slice(
    topic: string,
    partition: number,
    p: _Partition,
    from: number,
    maxCount: number,
    maxBytes: number,
  ): BusRecord[] {
    const out: BusRecord[] = [];
    let bytes = 0;
    for (let offset = Math.max(from, p.base); offset < p.end && out.length < maxCount; offset++) {
      const r = p.records[offset - p.base];
      if (out.length > 0 && bytes + r.size > maxBytes) break;
      bytes += r.size;
      out.push({
        topic,
        partition,
        offset,
        key: r.key,
        value: r.value,
        headers: r.headers,
        timestamp: r.timestamp,
        size: r.size,
      });
    }
    return out;
  }

  /** @internal */
  _group(id: string): _Group {
    let group = this.#groups.get(id);
    if (!group) this.#groups.set(id, group = new _Group(id));
    return group;
  }

  /** @internal Waits until a publish, `_wake()`, or the timeout. */
  _waitForData(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#waiters.add(done);
    });
  }

  /** @internal */
  _forget(consumer: MemoryGroupConsumer): void {
    this.#consumers.delete(consumer);
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  /** @internal */
  _wake(): void {
    this.#wake();
  }

  /**
   * Reassigns a group's partitions round-robin over its members (sorted by id), like Kafka's
   * round-robin assignor, and tells every member its new share.
   *
   * @internal
   */
  _rebalance(group: _Group): void {
    group.generation++;
    group.owners.clear();
    const members = [...group.members.values()].sort((a, b) =>
      a.memberId.localeCompare(b.memberId)
    );
    const topics = [...new Set(members.flatMap((m) => m.topics))].sort();
    const shares = new Map<MemoryGroupConsumer, TopicPartition[]>(members.map((m) => [m, []]));
    let i = 0;
    for (const topic of topics) {
      const subscribed = members.filter((m) => m.topics.includes(topic));
      const n = this.#topic(topic).partitions.length;
      for (let partition = 0; partition < n; partition++) {
        const member = subscribed[i++ % subscribed.length];
        shares.get(member)!.push({ topic, partition });
        group.owners.set(partitionKey({ topic, partition }), member.memberId);
      }
    }
    for (const member of members) member._assign(group.generation, shares.get(member)!);
  }

  #topic(name: string, partitions = this.#defaultPartitions): _Topic {
    let t = this.#topics.get(name);
    if (!t) {
      t = new _Topic(name, Array.from({ length: partitions }, () => new _Partition()));
      this.#topics.set(name, t);
      for (const group of this.#groups.values()) {
        const subscribed = [...group.members.values()].some((m) => m.topics.includes(name));
        if (subscribed) queueMicrotask(() => this._rebalance(group));
      }
    }
    return t;
  }
}

/**
 * A member of a consumer group on the embedded bus. Besides the port it offers `crash()`,
 * which makes the member vanish without leaving (like kill -9): the group takes its
 * partitions back only after the session timeout.
 */
export class MemoryGroupConsumer implements GroupConsumer {
  readonly memberId = crypto.randomUUID();
  readonly topics: string[];
  readonly #bus: MemoryBus;
  readonly #options: GroupConsumerOptions;
  readonly #group: _Group;
  #generation = -1;
  #assigned: TopicPartition[] = [];
  #positions = new Map<string, number>();
  #paused = new Set<string>();
  #running = false;
  #joined = false;
  #loop: Promise<void> | undefined;
  /** Callers of `idle()` waiting for a fetch pass that delivers nothing. */
  #idle = new IdleWaiters();

  /**
   * @param bus the embedded bus
   * @param options group, topics and sink
   */
  constructor(bus: MemoryBus, options: GroupConsumerOptions) {
    this.#bus = bus;
    this.#options = options;
    this.topics = [...options.topics];
    this.#group = bus._group(options.groupId);
  }

  /** Joins the group and starts the fetch loop. */
  start(): Promise<void> {
    if (this.#running) return Promise.resolve();
    this.#running = true;
    for (const topic of this.topics) {
      this.#bus._partitions(topic);
      this.#group.topics.add(topic);
    }
    this.#group.members.set(this.memberId, this);
    this.#joined = true;
    this.#bus._rebalance(this.#group);
    this.#loop = this.#fetchLoop();
    return Promise.resolve();
  }

  /**
   * Commits offsets of partitions this member owns; others are skipped.
   *
   * @param offsets next offsets to read
   * @returns those committed
   */
  commit(offsets: PartitionOffset[]): Promise<PartitionOffset[]> {
    if (!this.#joined) return Promise.resolve([]);
    const done: PartitionOffset[] = [];
    for (const o of offsets) {
      const k = partitionKey(o);
      if (this.#group.owners.get(k) !== this.memberId) continue;
      this.#group.committed.set(k, o.offset);
      done.push(o);
    }
    if (done.length) this.#bus._committed();
    return Promise.resolve(done);
  }

  /** @param topics topics to stop fetching */
  pause(topics: string[]): void {
    for (const t of topics) this.#paused.add(t);
  }

  /** @param topics topics to fetch again */
  resume(topics: string[]): void {
    for (const t of topics) this.#paused.delete(t);
    this.#bus._wake();
  }

  /** @returns owned partitions */
  assignment(): TopicPartition[] {
    return this.#joined ? [...this.#assigned] : [];
  }

  /** @returns whether in the group */
  inGroup(): boolean {
    return this.#joined && this.#running;
  }

  /** @returns the end offset of each owned partition */
  highWatermarks(): PartitionOffset[] {
    return this.assignment().map((tp) => ({
      ...tp,
      offset: this.#bus._partitions(tp.topic)[tp.partition].end,
    }));
  }

  /** @returns ok while in the group */
  check(): Promise<Check> {
    return Promise.resolve(
      this.inGroup() ? { ok: true } : { ok: false, detail: "not in its consumer group" },
    );
  }

  /** Leaves the group; its partitions go to the other members at once. */
  async stop(): Promise<void> {
    const wasJoined = this.#joined;
    this.#running = false;
    this.#bus._wake();
    await this.#loop;
    if (wasJoined) this.#leave("stopped");
    this.#bus._forget(this);
  }

  /**
   * Vanishes without leaving, like a process killed with SIGKILL: fetching stops at once and
   * the group rebalances after the session timeout.
   */
  crash(): void {
    this.#running = false;
    this.#bus._wake();
    this.#bus._forget(this);
    const timeout = this.#options.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS;
    setTimeout(() => this.#leave("session timed out"), timeout);
  }

  /**
   * Settles after a fetch pass begun after this call delivered nothing: every owned partition
   * is read to its end or paused, so nothing more arrives until a publish, a resume or a
   * rebalance. Tests assert what was not delivered with it instead of a window of time.
   *
   * @returns settles when caught up (at once when not running)
   */
  idle(): Promise<void> {
    if (!this.#running) return Promise.resolve();
    const caughtUp = this.#idle.next();
    this.#bus._wake();
    return caughtUp;
  }

  /** @internal Called by the group with this member's new share. */
  _assign(generation: number, partitions: TopicPartition[]): void {
    this.#generation = generation;
    this.#assigned = partitions;
    // Like Kafka after a rebalance: every owned partition restarts from its committed offset.
    this.#positions = new Map(partitions.map((tp) => [partitionKey(tp), this.#startOffset(tp)]));
    if (this.#running) this.#options.onAssignment?.([...partitions]);
    this.#bus._wake();
  }

  #startOffset(tp: TopicPartition): number {
    const committed = this.#group.committed.get(partitionKey(tp));
    const p = this.#bus._partitions(tp.topic)[tp.partition];
    if (committed !== undefined) return Math.max(committed, p.base);
    return this.#options.fromBeginning === false ? p.end : p.base;
  }

  #leave(reason: string): void {
    if (!this.#joined) return;
    this.#joined = false;
    this.#assigned = [];
    this.#group.members.delete(this.memberId);
    this.#options.onLeave?.(reason);
    this.#bus._rebalance(this.#group);
  }

  async #fetchLoop(): Promise<void> {
    const maxWait = this.#options.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
    const maxBytes = this.#options.maxBytesPerPartition ?? DEFAULT_MAX_BYTES_PER_PARTITION;
    while (this.#running) {
      const end = this.#idle.begin();
      let delivered = 0;
      const generation = this.#generation;
      for (const tp of this.#assigned) {
        if (!this.#running || generation !== this.#generation) break;
        if (this.#paused.has(tp.topic)) continue;
        const k = partitionKey(tp);
        const from = this.#positions.get(k) ?? 0;
        const p = this.#bus._partitions(tp.topic)[tp.partition];
        if (from >= p.end) continue;
        const records = this.#bus._slice(tp.topic, tp.partition, p, from, 1000, maxBytes);
        this.#positions.set(k, records[records.length - 1].offset + 1);
        delivered += records.length;
        this.#options.onRecords(records);
      }
      // A pass cut short by a rebalance proves nothing: the new share may hold records.
      end(delivered === 0 && generation === this.#generation);
      if (delivered > 0) {
        // Yield a macrotask so handlers' I/O runs between fetches, as with a real broker.
        await new Promise((r) => setTimeout(r, 0));
      } else if (!this.#idle.waiting) {
        await this.#bus._waitForData(maxWait);
      }
      // Otherwise an idle() is waiting for a pass: the next one starts at once.
    }
    this.#idle.releaseAll();
  }
}
