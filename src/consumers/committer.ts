/**
 * @module Commits handled offsets: gathers the highest handled offset per partition and commits
 * them every interval, or at once on `flush()` (after a bulk batch, before leaving the group).
 */
import { type GroupConsumer, partitionKey, type PartitionOffset } from "../infra/bus-consumer.ts";
import type { Logger } from "../log.ts";

/**
 * Offsets handled but not committed yet, and the loop that commits them.
 *
 * @example
 * ```ts
 * const committer = new Committer(groupConsumer, log, 500);
 * committer.start();
 * committer.done({ topic, partition, offset: record.offset + 1 });
 * ```
 */
export class Committer {
  readonly #consumer: GroupConsumer;
  readonly #log: Logger;
  readonly #intervalMs: number;
  #pending = new Map<string, PartitionOffset>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #flushing: Promise<void> | undefined;

  /**
   * @param consumer the group consumer that commits
   * @param log the logger
   * @param intervalMs time between commits
   */
  constructor(consumer: GroupConsumer, log: Logger, intervalMs: number) {
    this.#consumer = consumer;
    this.#log = log;
    this.#intervalMs = intervalMs;
  }

  /** Starts committing every interval. */
  start(): void {
    this.#timer ??= setInterval(() => void this.flush(), this.#intervalMs);
  }

  /** Stops the interval (call `flush()` for a last commit). */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Notes that a partition is handled up to (not including) `offset`.
   *
   * @param next the next offset to read
   */
  done(next: PartitionOffset): void {
    const k = partitionKey(next);
    const known = this.#pending.get(k);
    if (!known || known.offset < next.offset) this.#pending.set(k, next);
  }

  /**
   * Forgets pending offsets of revoked partitions (their new owner commits them).
   *
   * @param keys revoked partitions' keys
   */
  forget(keys: string[]): void {
    for (const k of keys) this.#pending.delete(k);
  }

  /** Commits what is pending now; errors are logged and the offsets kept for the next try. */
  flush(): Promise<void> {
    if (this.#flushing) return this.#flushing.then(() => this.flush());
    if (this.#pending.size === 0) return Promise.resolve();
    const batch = [...this.#pending.values()];
    this.#flushing = this.#consumer.commit(batch).then(
      () => {
        for (const o of batch) {
          const k = partitionKey(o);
          if (this.#pending.get(k)?.offset === o.offset) this.#pending.delete(k);
        }
      },
      (err) => this.#log.warn("committing offsets failed; will retry", { error: err }),
    ).finally(() => (this.#flushing = undefined));
    return this.#flushing;
  }
}
