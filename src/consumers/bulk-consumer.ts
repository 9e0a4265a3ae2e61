/**
 * @module The bulk-consumer loop: records gathered across fetches and partitions into batches
 * bounded by count, bytes and time; each batch handled in one call, retried, then bisected to
 * isolate poison records for the dead-letter topic; offsets committed after each batch.
 */
import type { Runtime } from "../runtime.ts";
import type { BusRecord } from "../infra/bus-consumer.ts";
import { BaseConsumerService, isUnavailable, SchemaError } from "./base.ts";
import type { BulkConsumerDefinition, BulkContext, Message } from "./define.ts";
import type { DeadLetter } from "./dead-letter.ts";
import { applyOnce } from "./once.ts";

type _Outcome = "ok" | "failed" | "handed-back";

interface _Item {
  record: BusRecord;
  message: Message<unknown>;
}

/** Runs one `defineBulkConsumer` definition. */
export class BulkConsumerService extends BaseConsumerService {
  readonly #def: BulkConsumerDefinition;
  readonly #maxCount: number;
  readonly #maxBytes: number;
  readonly #maxWaitMs: number;

  /**
   * @param rt the runtime
   * @param def the definition
   */
  constructor(rt: Runtime, def: BulkConsumerDefinition) {
    const maxCount = def.maxBatchSize ?? 500;
    const maxBytes = def.maxBatchBytes ?? 1024 * 1024;
    // Room for several batches, so fetching rarely waits on handling.
    super(rt, def, "bulk-consumer", {
      maxRecords: Math.max(4 * maxCount, 20_000),
      maxBytes: Math.max(4 * maxBytes, 16 * 1024 * 1024),
    });
    this.#def = def;
    this.#maxCount = maxCount;
    this.#maxBytes = maxBytes;
    this.#maxWaitMs = def.maxWaitMs ?? 200;
  }

  protected async run(): Promise<void> {
    while (!this.stopping) {
      if (this.buffer.count === 0) {
        await this.buffer.wait();
        continue;
      }
      // Linger: the batch closes when a bound is hit or `maxWaitMs` after it started filling.
      const closeAt = Date.now() + this.#maxWaitMs;
      while (
        !this.stopping && Date.now() < closeAt && this.buffer.count < this.#maxCount &&
        this.buffer.bytes < this.#maxBytes
      ) {
        await this.buffer.wait(closeAt);
      }
      if (this.stopping) break;
      const taken = this.buffer.take(this.#maxCount, this.#maxBytes);
      if (taken.length === 0) continue;
      if (await this.#handleBatch(taken.map((t) => t.record))) {
        this.markDone(taken);
        // Committed while the next batch is handled; `stop()` waits for the last commit.
        void this.flushCommits();
      }
    }
  }

  /** @returns false when handed back (shutdown) */
  async #handleBatch(records: BusRecord[]): Promise<boolean> {
    this.metrics.batchSize.observe({ consumer: this.consumer }, records.length);
    const items: _Item[] = [];
    const invalid: DeadLetter[] = [];
    for (const record of records) {
      const message = this.decode(record);
      if (message instanceof SchemaError) {
        invalid.push({ record, error: message, reason: "schema", attempts: 0 });
      } else items.push({ record, message });
    }
    if (!(await this.deadLetter(invalid))) return false;
    return items.length === 0 || await this.#isolate(items, true);
  }

  /**
   * Writes items; if they keep failing, splits them in halves until the failing ones are
   * alone, and dead-letters those.
   *
   * @returns false when handed back
   */
  async #isolate(items: _Item[], whole: boolean): Promise<boolean> {
    // The whole batch and single records get every attempt; halves in between get one, since
    // a failing half is split again anyway.
    const attempts = whole || items.length === 1 ? this.maxAttempts : 1;
    const { outcome, error, tries } = await this.#write(items, attempts);
    if (outcome === "ok") return true;
    if (outcome === "handed-back") return false;
    if (items.length === 1) {
      return await this.deadLetter([{
        record: items[0].record,
        error,
        reason: "handler",
        attempts: tries,
      }]);
    }
    if (whole) {
      this.log.warn("batch keeps failing: splitting it to isolate the failing records", {
        size: items.length,
        error,
      });
    }
    const half = items.length >> 1;
    return await this.#isolate(items.slice(0, half), false) &&
      await this.#isolate(items.slice(half), false);
  }

  async #write(
    items: _Item[],
    maxAttempts: number,
  ): Promise<{ outcome: _Outcome; error?: unknown; tries: number }> {
    const labels = { consumer: this.consumer, topic: this.topic };
    const batch = items.map((i) => i.message);
    for (let attempt = 1, waits = 0;;) {
      const started = performance.now();
      try {
        await this.#def.handler(batch, this.#context(attempt));
        this.metrics.handlerSeconds.observe(
          { consumer: this.consumer },
          (performance.now() - started) / 1000,
        );
        this.metrics.processed.inc(labels, items.length);
        return { outcome: "ok", tries: attempt };
      } catch (err) {
        this.metrics.failed.inc(labels, items.length);
        if (this.stopping) return { outcome: "handed-back", tries: attempt };
        if (isUnavailable(err)) {
          this.log.warn("batch failed: a dependency is unavailable; will retry", {
            size: items.length,
            error: err,
          });
          if (!(await this.sleep(this.backoff(++waits)))) {
            return { outcome: "handed-back", tries: attempt };
          }
          continue;
        }
        waits = 0;
        if (attempt >= maxAttempts) return { outcome: "failed", error: err, tries: attempt };
        if (!(await this.sleep(this.backoff(attempt)))) {
          return { outcome: "handed-back", tries: attempt };
        }
        attempt++;
      }
    }
  }

  #context(attempt: number): BulkContext {
    return {
      ...this.baseContext(attempt),
      onceEach: (effects, summary) => applyOnce(this.rt.store, this.markerKey, effects, summary),
    };
  }
}
