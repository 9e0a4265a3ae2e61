/**
 * @module Prometheus metrics of the consumers, made once per runtime.
 */
import { Counter, Gauge, Histogram } from "prom-client";
import { perRuntime, promRegistry, type Runtime } from "../runtime.ts";
import type { PartitionOffset } from "../infra/bus-consumer.ts";

/** What the lag gauge asks each running consumer on every scrape. */
export interface LagSource {
  /** The consumer's name. */
  readonly consumer: string;
  /** Per owned partition: messages after the last handled one. */
  lag(): PartitionOffset[];
  /** Whether it is in its group. */
  inGroup(): boolean;
}

/** The consumers' metrics. */
export interface ConsumerMetrics {
  processed: Counter<"consumer" | "topic">;
  failed: Counter<"consumer" | "topic">;
  deadLettered: Counter<"consumer" | "topic" | "reason">;
  batchSize: Histogram<"consumer">;
  handlerSeconds: Histogram<"consumer">;
  rebalances: Counter<"consumer">;
  /** Consumers whose lag and membership are reported. */
  sources: Set<LagSource>;
}

/**
 * The consumers' metrics of a runtime, registered on `rt.metrics` the first time.
 *
 * @param rt the runtime
 * @returns the metrics
 */
export const consumerMetrics: (rt: Runtime) => ConsumerMetrics = perRuntime((rt) => {
  const registers = [promRegistry(rt)];
  const sources = new Set<LagSource>();
  new Gauge({
    name: "consumer_lag",
    help: "Messages in a partition after the last one the consumer handled",
    labelNames: ["consumer", "topic", "partition"],
    registers,
    collect() {
      this.reset();
      for (const s of sources) {
        for (const p of s.lag()) {
          this.set({ consumer: s.consumer, topic: p.topic, partition: p.partition }, p.offset);
        }
      }
    },
  });
  new Gauge({
    name: "consumer_in_group",
    help: "1 while the consumer is a member of its consumer group",
    labelNames: ["consumer"],
    registers,
    collect() {
      this.reset();
      for (const s of sources) this.set({ consumer: s.consumer }, s.inGroup() ? 1 : 0);
    },
  });
  return {
    sources,
    processed: new Counter({
      name: "consumer_messages_processed_total",
      help: "Messages handled successfully",
      labelNames: ["consumer", "topic"],
      registers,
    }),
    failed: new Counter({
      name: "consumer_messages_failed_total",
      help: "Handler attempts that threw (each retry counts)",
      labelNames: ["consumer", "topic"],
      registers,
    }),
    deadLettered: new Counter({
      name: "consumer_messages_dead_lettered_total",
      help: "Messages sent to the dead-letter topic, by reason (schema or handler)",
      labelNames: ["consumer", "topic", "reason"],
      registers,
    }),
    batchSize: new Histogram({
      name: "consumer_batch_size",
      help: "Messages per batch handed to a bulk consumer's handler",
      labelNames: ["consumer"],
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000],
      registers,
    }),
    handlerSeconds: new Histogram({
      name: "consumer_handler_seconds",
      help: "Time a handler took per message (consumer) or per batch (bulk consumer)",
      labelNames: ["consumer"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    rebalances: new Counter({
      name: "consumer_rebalances_total",
      help: "Partition assignments received (a rebalance of the group)",
      labelNames: ["consumer"],
      registers,
    }),
  };
});
