/**
 * @module The records fetched but not handled yet, per partition, between a group consumer's
 * fetch loop and a consumer's handler loop: bounded (fetching pauses while it is full), rid of
 * redeliveries after a rebalance, and aware of which partitions this member still owns.
 */
import {
  type BusRecord,
  partitionKey,
  type PartitionOffset,
  type TopicPartition,
} from "../infra/bus-consumer.ts";

/** When fetching pauses; it resumes below half of both. */
export interface BufferLimits {
  maxRecords: number;
  maxBytes: number;
}

/** A record taken from the buffer, with the ownership epoch of its partition at that time. */
export interface Taken {
  record: BusRecord;
  epoch: number;
}

interface _Partition {
  tp: TopicPartition;
  /** Ownership epoch: changes whenever the partition is revoked. */
  epoch: number;
  queue: BusRecord[];
  head: number;
  /** Next offset expected from the fetch loop; lower ones are redeliveries. */
  fetched: number;
  /** Next offset to handle: everything below it is handled. */
  handled: number;
  /** A handler loop works on it (consumers keep one partition in order). */
  claimed: boolean;
}

/**
 * Fetched records waiting for their handler.
 *
 * @example
 * ```ts
 * const buffer = new RecordBuffer({ maxRecords: 1000, maxBytes: 8 << 20 }, pause, resume);
 * groupConsumer = bus.consumer({ ..., onRecords: (r) => buffer.push(r) });
 * ```
 */
export class RecordBuffer {
  readonly #limits: BufferLimits;
  readonly #onFull: () => void;
  readonly #onDrained: () => void;
  readonly #partitions = new Map<string, _Partition>();
  #waiters = new Set<() => void>();
  #full = false;
  #epochs = 0;
  #rotation = 0;
  /** Records waiting. */
  count = 0;
  /** Bytes waiting. */
  bytes = 0;

  /**
   * @param limits when to pause fetching
   * @param onFull pauses fetching
   * @param onDrained resumes fetching
   */
  constructor(limits: BufferLimits, onFull: () => void, onDrained: () => void) {
    this.#limits = limits;
    this.#onFull = onFull;
    this.#onDrained = onDrained;
  }

  /**
   * Adds fetched records, dropping those already fetched (redelivered after a rebalance) and
   * those of partitions this member does not own.
   *
   * @param records in offset order within each partition
   */
  push(records: BusRecord[]): void {
    let added = 0;
    for (const r of records) {
      const p = this.#partitions.get(partitionKey(r));
      if (!p) continue;
      if (p.fetched < 0) p.fetched = p.handled = r.offset;
      if (r.offset < p.fetched) continue;
      p.fetched = r.offset + 1;
      p.queue.push(r);
      this.count++;
      this.bytes += r.size;
      added++;
    }
    if (added === 0) return;
    if (
      !this.#full && (this.count >= this.#limits.maxRecords || this.bytes >= this.#limits.maxBytes)
    ) {
      this.#full = true;
      this.#onFull();
    }
    this.wake();
  }

  /**
   * Takes the partitions this member owns now. Revoked partitions lose their waiting records
   * (the new owner reads them from the committed offset) and get a new epoch, so work on
   * their records taken earlier is not committed.
   *
   * @param owned partitions owned after the rebalance
   * @returns the revoked partitions' keys
   */
  assign(owned: TopicPartition[]): string[] {
    const keep = new Set(owned.map(partitionKey));
    const revoked: string[] = [];
    for (const [k, p] of this.#partitions) {
      if (keep.has(k)) continue;
      this.#drop(p);
      this.#partitions.delete(k);
      revoked.push(k);
    }
    for (const tp of owned) {
      const k = partitionKey(tp);
      if (this.#partitions.has(k)) continue;
      this.#partitions.set(k, {
        tp: { topic: tp.topic, partition: tp.partition },
        epoch: ++this.#epochs,
        queue: [],
        head: 0,
        fetched: -1,
        handled: -1,
        claimed: false,
      });
    }
    this.#checkDrained();
    this.wake();
    return revoked;
  }

  /**
   * Whether a record taken under `epoch` may still be committed: its partition was not
   * revoked since.
   *
   * @param tp the record's partition
   * @param epoch the epoch it was taken under
   * @returns true while owned without interruption
   */
  owns(tp: TopicPartition, epoch: number): boolean {
    return this.#partitions.get(partitionKey(tp))?.epoch === epoch;
  }

  /**
   * Records that everything in a partition before `next` is handled (for the lag).
   *
   * @param tp the partition
   * @param next the offset after the last handled record
   * @param epoch the epoch the record was taken under
   * @returns whether it is still owned (then the offset may be committed)
   */
  handled(tp: TopicPartition, next: number, epoch: number): boolean {
    const p = this.#partitions.get(partitionKey(tp));
    if (!p || p.epoch !== epoch) return false;
    if (next > p.handled) p.handled = next;
    return true;
  }

  /**
   * Claims a partition with waiting records that no other loop works on, longest waiting
   * first by rotation.
   *
   * @returns its key, or undefined if none
   */
  claim(): string | undefined {
    const all = [...this.#partitions.values()];
    for (let i = 0; i < all.length; i++) {
      const p = all[(this.#rotation + i) % all.length];
      if (!p.claimed && p.head < p.queue.length) {
        this.#rotation = (this.#rotation + i + 1) % all.length;
        p.claimed = true;
        return partitionKey(p.tp);
      }
    }
    return undefined;
  }

  /**
   * Releases a claimed partition.
   *
   * @param key the partition's key
   */
  release(key: string): void {
    const p = this.#partitions.get(key);
    if (p) p.claimed = false;
    this.wake();
  }

  /**
   * Takes the next record of a partition.
   *
   * @param key the partition's key
   * @returns the record and its epoch, or undefined when none waits (or it was revoked)
   */
  next(key: string): Taken | undefined {
    const p = this.#partitions.get(key);
    if (!p || p.head >= p.queue.length) return undefined;
    const record = p.queue[p.head];
    this.#advance(p, 1);
    return { record, epoch: p.epoch };
  }

  /**
   * Takes a batch across partitions, in offset order within each, taking from each partition
   * in turn so none starves.
   *
   * @param maxCount most records
   * @param maxBytes most bytes (at least one record is taken)
   * @returns the records with their epochs
   */
  take(maxCount: number, maxBytes: number): Taken[] {
    const out: Taken[] = [];
    let bytes = 0;
    const active = [...this.#partitions.values()].filter((p) => p.head < p.queue.length);
    while (out.length < maxCount && active.length > 0) {
      const share = Math.max(1, Math.ceil((maxCount - out.length) / active.length));
      for (let i = 0; i < active.length && out.length < maxCount;) {
        const p = active[i];
        let n = 0;
        while (n < share && p.head + n < p.queue.length && out.length < maxCount) {
          const record = p.queue[p.head + n];
          if (out.length > 0 && bytes + record.size > maxBytes) break;
          bytes += record.size;
          out.push({ record, epoch: p.epoch });
          n++;
        }
        this.#advance(p, n);
        if (out.length > 0 && bytes >= maxBytes) return out;
        if (n < share || p.head >= p.queue.length) active.splice(i, 1);
        else i++;
      }
    }
    return out;
  }

  /**
   * Lag per owned partition: the high watermark minus the next offset to handle.
   *
   * @param highWatermarks from the group consumer
   * @returns lag per partition (0 when nothing was fetched yet)
   */
  lag(highWatermarks: PartitionOffset[]): PartitionOffset[] {
    return highWatermarks.flatMap((hw) => {
      const p = this.#partitions.get(partitionKey(hw));
      if (!p) return [];
      return [{ ...hw, offset: p.handled < 0 ? 0 : Math.max(0, hw.offset - p.handled) }];
    });
  }

  /**
   * Waits until records arrive, the assignment changes, `wake()` is called, or `until`.
   *
   * @param until epoch ms (default: no timeout)
   */
  wait(until?: number): Promise<void> {
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve();
      };
      if (until !== undefined) timer = setTimeout(done, Math.max(0, until - Date.now()));
      this.#waiters.add(done);
    });
  }

  /** Wakes every waiting loop. */
  wake(): void {
    const waiters = this.#waiters;
    this.#waiters = new Set();
    for (const w of waiters) w();
  }

  /** Drops every waiting record (shutdown: they go back to the group uncommitted). */
  clear(): void {
    for (const p of this.#partitions.values()) this.#drop(p);
    this.#checkDrained();
  }

  #advance(p: _Partition, n: number): void {
    if (n === 0) return;
    for (let i = 0; i < n; i++) this.bytes -= p.queue[p.head + i].size;
    p.head += n;
    this.count -= n;
    if (p.head >= p.queue.length) {
      p.queue = [];
      p.head = 0;
    } else if (p.head > 4096) {
      p.queue = p.queue.slice(p.head);
      p.head = 0;
    }
    this.#checkDrained();
  }

  #drop(p: _Partition): void {
    for (let i = p.head; i < p.queue.length; i++) this.bytes -= p.queue[i].size;
    this.count -= p.queue.length - p.head;
    p.queue = [];
    p.head = 0;
    p.epoch = ++this.#epochs;
    p.fetched = p.handled;
  }

  #checkDrained(): void {
    if (
      this.#full && this.count <= this.#limits.maxRecords / 2 &&
      this.bytes <= this.#limits.maxBytes / 2
    ) {
      this.#full = false;
      this.#onDrained();
    }
  }
}
