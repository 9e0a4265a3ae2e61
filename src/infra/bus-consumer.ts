/**
 * @module The consumer side of the Bus port: a group consumer that both buses implement
 * (`kafka.ts` on kafkajs, `memory-bus.ts` in process). It only fetches, tracks the group and
 * commits; retries, batching and dead letters live in `src/consumers/`.
 */
import type { Check } from "./store.ts";

/** One record read from a topic. */
export interface BusRecord {
  /** The topic, `TOPIC_PREFIX` included. */
  topic: string;
  /** Its partition. */
  partition: number;
  /** Position in its partition; the offset to commit after handling it is `offset + 1`. */
  offset: number;
  /** The key, or null. */
  key: string | null;
  /** The value, or null (a tombstone). */
  value: string | null;
  /** Its headers. */
  headers: Record<string, string>;
  /** Epoch ms the producer (or broker) stamped. */
  timestamp: number;
  /** Bytes of key and value, for byte-bounded batches. */
  size: number;
}

/** A partition of a topic. */
export interface TopicPartition {
  /** The topic, `TOPIC_PREFIX` included. */
  topic: string;
  /** The partition. */
  partition: number;
}

/** An offset to commit: the next offset the group will read from that partition. */
export interface PartitionOffset extends TopicPartition {
  /** The next offset to read. */
  offset: number;
}

/** How a group consumer joins and fetches. */
export interface GroupConsumerOptions {
  /** Consumer-group id (already under `KEY_PREFIX`). */
  groupId: string;
  /** Topics to subscribe to. */
  topics: string[];
  /** With no committed offset, start at the earliest record (default) or at the end. */
  fromBeginning?: boolean;
  /** The group drops a member silent for this long (Kafka `session.timeout.ms`). */
  sessionTimeoutMs?: number;
  /** Longest a fetch waits for records before returning empty. */
  maxWaitMs?: number;
  /** Most bytes one fetch returns per partition. */
  maxBytesPerPartition?: number;
  /**
   * Receives fetched records, in offset order within each partition. Called synchronously by
   * the fetch loop, which goes on fetching (use `pause` for backpressure). After a rebalance
   * the bus may deliver again records from the committed offset on.
   */
  onRecords(records: BusRecord[]): void;
  /**
   * Called after each join with the partitions this member now owns; any partition it owned
   * before and is not listed was revoked (another member may read it from now on).
   */
  onAssignment?(partitions: TopicPartition[]): void;
  /** Called when the member drops out of its group (crash, broker lost, stop). */
  onLeave?(reason: string): void;
}

/** A member of a consumer group. */
export interface GroupConsumer {
  /**
   * Starts joining the group in the background; resolves at once. Membership shows in
   * `inGroup()` and `check()`; a lost broker or a crashed session is rejoined automatically.
   */
  start(): Promise<void>;
  /**
   * Commits offsets (the next offset to read). Only partitions this member owns now are
   * committed; the rest are skipped, so a revoked partition's new owner is never overwritten.
   * @returns the offsets actually committed
   */
  commit(offsets: PartitionOffset[]): Promise<PartitionOffset[]>;
  /** Stops fetching these topics until `resume` (records already delivered stay valid). */
  pause(topics: string[]): void;
  /** Resumes fetching. */
  resume(topics: string[]): void;
  /** The partitions owned now (empty while out of the group). */
  assignment(): TopicPartition[];
  /** Whether the member is in its group now. */
  inGroup(): boolean;
  /** High watermark (offset after the newest record) per partition, as last seen. */
  highWatermarks(): PartitionOffset[];
  /** Readiness: ok only while in the group. */
  check(): Promise<Check>;
  /** Stops fetching and leaves the group (uncommitted records go to the next owner). */
  stop(): Promise<void>;
}

/** A bus that can create group consumers. */
export interface ConsumerBus {
  /**
   * Creates a group consumer; `Bus.close()` stops it too.
   * @param options group, topics and the record sink
   * @returns the consumer, not started
   */
  consumer(options: GroupConsumerOptions): GroupConsumer;
}

/**
 * Builds the map key of a partition.
 *
 * @param tp topic and partition
 * @returns `topic/partition`
 */
export function partitionKey(tp: TopicPartition): string {
  return `${tp.topic}/${tp.partition}`;
}
