/**
 * @module `TOPIC_PREFIX` applied where topics are named: the bus every feature and program is
 * handed publishes to and creates `<prefix><topic>`, whoever publishes (a route, a schedule, a
 * consumer's dead letters, `rt.bus`).
 */
import type { Bus } from "./bus.ts";

/**
 * Wraps a bus so `publish` and `ensureTopics` take topic names without the prefix. Group
 * consumers subscribe by full name (a record carries its full topic name, and offsets are
 * committed by it): the runtime's consumers add the prefix themselves; `ensureTopics` answers the
 * missing topics by full name, as the bus's readiness check names them.
 *
 * @param bus the Kafka or embedded bus
 * @param prefix `TOPIC_PREFIX` (may be empty)
 * @returns a bus that adds the prefix
 */
export function withTopicPrefix(bus: Bus, prefix: string): Bus {
  if (prefix === "") return bus;
  return {
    kind: bus.kind,
    publish: (topic, messages) => bus.publish(prefix + topic, messages),
    ensureTopics: (topics, partitions) =>
      bus.ensureTopics(topics.map((topic) => prefix + topic), partitions),
    consumer: (options) => bus.consumer(options),
    check: () => bus.check(),
    close: () => bus.close(),
  };
}
