/**
 * @module The consumer loop: one message at a time per partition (several partitions at once if
 * configured), retried with backoff, dead-lettered when it keeps failing, committed after.
 */
import type { Runtime } from "../runtime.ts";
import { BaseConsumerService, isUnavailable, SchemaError } from "./base.ts";
import type { ConsumerContext, ConsumerDefinition, Message } from "./define.ts";
import { applyOnce } from "./once.ts";
import type { Taken } from "./record-buffer.ts";

/** A partition is released after this many messages so the others get their turn. */
const FAIR_SHARE = 200;

/** Runs one `defineConsumer` definition. */
export class ConsumerService extends BaseConsumerService {
  readonly #def: ConsumerDefinition;
  readonly #concurrency: number;

  /**
   * @param rt the runtime
   * @param def the definition
   */
  constructor(rt: Runtime, def: ConsumerDefinition) {
    const concurrency = Math.max(1, def.partitionsConsumedConcurrently ?? 1);
    // Look-ahead of a few seconds of work: a resumed fetch may take up to the fetch wait.
    super(rt, def, "consumer", { maxRecords: 10_000, maxBytes: 16 * 1024 * 1024 });
    this.#def = def;
    this.#concurrency = concurrency;
  }

  protected async run(): Promise<void> {
    await Promise.all(Array.from({ length: this.#concurrency }, () => this.#worker()));
  }

  async #worker(): Promise<void> {
    while (!this.stopping) {
      const key = this.buffer.claim();
      if (key === undefined) {
        await this.buffer.wait();
        continue;
      }
      try {
        for (let n = 0; n < FAIR_SHARE && !this.stopping; n++) {
          const taken = this.buffer.next(key);
          if (!taken || !(await this.#handle(taken))) break;
        }
      } finally {
        this.buffer.release(key);
      }
    }
  }

  /** @returns false when the message was handed back (shutdown, or partition revoked) */
  async #handle(taken: Taken): Promise<boolean> {
    const { record, epoch } = taken;
    const message = this.decode(record);
    if (message instanceof SchemaError) {
      if (!(await this.deadLetter([{ record, error: message, reason: "schema", attempts: 0 }]))) {
        return false;
      }
      this.markDone([taken]);
      return true;
    }
    const labels = { consumer: this.consumer, topic: this.topic };
    for (let attempt = 1, waits = 0;;) {
      const started = performance.now();
      try {
        await this.#def.handler(message, this.#context(message, attempt));
        this.metrics.handlerSeconds.observe(
          { consumer: this.consumer },
          (performance.now() - started) / 1000,
        );
        this.metrics.processed.inc(labels);
        this.markDone([taken]);
        return true;
      } catch (err) {
        this.metrics.failed.inc(labels);
        if (this.stopping || !this.buffer.owns(record, epoch)) return false;
        const fields = { offset: record.offset, partition: record.partition, attempt, error: err };
        if (isUnavailable(err)) {
          // A dependency is down: wait for it without using up attempts.
          this.log.warn("handler failed: a dependency is unavailable; will retry", fields);
          if (!(await this.sleep(this.backoff(++waits)))) return false;
          continue;
        }
        waits = 0;
        if (attempt >= this.maxAttempts) {
          if (
            !(await this.deadLetter([{ record, error: err, reason: "handler", attempts: attempt }]))
          ) {
            return false;
          }
          this.markDone([taken]);
          return true;
        }
        this.log.warn("handler failed; will retry", fields);
        if (!(await this.sleep(this.backoff(attempt)))) return false;
        attempt++;
      }
    }
  }

  #context(message: Message<unknown>, attempt: number): ConsumerContext {
    return {
      ...this.baseContext(attempt),
      once: async (commands, identity = message.id) =>
        (await applyOnce(this.rt.store, this.markerKey, [{ id: identity, commands }])) > 0,
    };
  }
}
