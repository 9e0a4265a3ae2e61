/**
 * @module What the consumer tests share: a runtime on one bus backend, its topic and
 * dead-letter topic, a reader of the dead letters, and services stopped at cleanup.
 */
import type { BusRecord } from "../../src/infra/bus-consumer.ts";
import type { OutgoingMessage } from "../../src/infra/bus.ts";
import type { Runtime, Service } from "../../src/runtime.ts";
import {
  type BusBackend,
  deleteTopicsLater,
  onCleanup,
  readTopic,
  testRuntime,
  unique,
  waitFor,
} from "../helpers.ts";

/** One test's world. */
export interface Harness {
  rt: Runtime;
  /** The topic name without TOPIC_PREFIX (what definitions take). */
  topic: string;
  /** Full names. */
  fullTopic: string;
  dlq: string;
  publish(messages: OutgoingMessage[]): Promise<void>;
  /** Starts a service; it is stopped at cleanup. */
  run(service: Service): Promise<Service>;
  /** Records of the dead-letter topic, read as they arrive. */
  deadLetters(): Promise<BusRecord[]>;
  /** A counter's or gauge's value (or a histogram's `_count`/`_sum`) with these labels, summed. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

/**
 * Creates a harness on a backend.
 *
 * @param backend memory or kafka
 * @returns the harness
 */
export async function harness(backend: BusBackend): Promise<Harness> {
  const rt = testRuntime({ env: backend.env });
  const topic = unique("t");
  const fullTopic = `${rt.config.topicPrefix}${topic}`;
  const dlq = `${fullTopic}.dlq`;
  if (backend.name === "kafka") deleteTopicsLater([fullTopic, dlq]);
  await rt.bus.ensureTopics([topic, `${topic}.dlq`], 3);
  let dead: Promise<BusRecord[]> | undefined;
  return {
    rt,
    topic,
    fullTopic,
    dlq,
    publish: (messages) => rt.bus.publish(topic, messages),
    async run(service) {
      await service.start();
      onCleanup(() => service.stop(Date.now() + 5_000));
      return service;
    },
    deadLetters: () => dead ??= readTopic(rt.bus, dlq, "dlq-reader"),
    async metric(name, labels = {}) {
      // Histograms: ask for `<name>_count` or `<name>_sum`.
      const base = name.replace(/_(count|sum)$/, "");
      const metric = rt.metrics.getSingleMetric(name) ?? rt.metrics.getSingleMetric(base);
      if (!metric) return 0;
      const { values } = await metric.get();
      return values
        .filter((v) =>
          (v as { metricName?: string }).metricName === undefined ||
          (v as { metricName?: string }).metricName === name
        )
        .filter((v) => Object.entries(labels).every(([k, x]) => String(v.labels[k]) === x))
        .reduce((n, v) => n + v.value, 0);
    },
  };
}

/**
 * Waits until a service is in its consumer group.
 *
 * @param service a consumer service
 */
export async function inGroup(service: Service): Promise<void> {
  await waitFor(async () => (await service.check!()).ok, 30_000, `${service.name} in its group`);
}
