/**
 * @module The messaging port: Kafka (`kafka.ts`) or the embedded bus (`memory-bus.ts`).
 */
import type { Check } from "./store.ts";
import type { ConsumerBus } from "./bus-consumer.ts";

/**
 * The header a published message carries its id in, set once by the bus (kept if the caller
 * set it), the same on every retry: consumers apply a message once per id.
 */
export const MESSAGE_ID_HEADER = "message-id";

/** One message to publish. */
export interface OutgoingMessage {
  /** The message key (same key, same partition); none by default. */
  key?: string | null;
  /** The value, usually JSON. */
  value: string;
  /** Message headers. */
  headers?: Record<string, string>;
}

/** A Kafka-like message bus. The consumer side is defined in `bus-consumer.ts`. */
export interface Bus extends ConsumerBus {
  /** `kafka` or `memory`. */
  readonly kind: "kafka" | "memory";
  /** Publishes messages to one topic; resolves once the broker acknowledged all of them. */
  publish(topic: string, messages: OutgoingMessage[]): Promise<void>;
  /**
   * Creates the topics that do not exist yet; resolves with those that do not exist and may
   * not be created (no right to), which `check()` then names.
   */
  ensureTopics(topics: string[], partitions?: number): Promise<string[]>;
  /** Whether the bus answers now. */
  check(): Promise<Check>;
  /** Closes producers, admin and every consumer created from this bus. */
  close(): Promise<void>;
}
