/**
 * @module Dead letters: a message that cannot be handled goes to `<topic>.dlq`, unchanged, with
 * headers saying why, after how many attempts, and where it came from.
 */
import type { BusRecord } from "../infra/bus-consumer.ts";
import type { OutgoingMessage } from "../infra/bus.ts";

/** Headers a dead letter carries (its original headers are kept too). */
export const DLQ_HEADERS = {
  /** The error message. */
  error: "dlq-error",
  /** `schema` (not JSON, or failed the schema) or `handler` (threw on every attempt). */
  reason: "dlq-reason",
  /** Attempts made (0 for schema failures: the handler never ran). */
  attempts: "dlq-attempts",
  originalTopic: "dlq-original-topic",
  originalPartition: "dlq-original-partition",
  originalOffset: "dlq-original-offset",
  /** Epoch ms of the original message. */
  originalTimestamp: "dlq-original-timestamp",
  /** The consumer that gave up on it. */
  consumer: "dlq-consumer",
  /** ISO-8601 time it was dead-lettered. */
  failedAt: "dlq-failed-at",
} as const;

/** Why a message is dead-lettered. */
export type DeadLetterReason = "schema" | "handler";

/** A message to dead-letter and why. */
export interface DeadLetter {
  record: BusRecord;
  error: unknown;
  reason: DeadLetterReason;
  attempts: number;
}

const MAX_ERROR_LENGTH = 2000;

/**
 * Builds the dead-letter message of a failed one: same key and value, original headers, and
 * the `dlq-*` headers.
 *
 * @param letter the message and why it failed
 * @param consumer the consumer's name
 * @returns the message to publish to `<topic>.dlq`
 */
export function deadLetterMessage(letter: DeadLetter, consumer: string): OutgoingMessage {
  const { record, error, reason, attempts } = letter;
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return {
    key: record.key,
    value: record.value ?? "",
    headers: {
      ...record.headers,
      [DLQ_HEADERS.error]: message.slice(0, MAX_ERROR_LENGTH),
      [DLQ_HEADERS.reason]: reason,
      [DLQ_HEADERS.attempts]: String(attempts),
      [DLQ_HEADERS.originalTopic]: record.topic,
      [DLQ_HEADERS.originalPartition]: String(record.partition),
      [DLQ_HEADERS.originalOffset]: String(record.offset),
      [DLQ_HEADERS.originalTimestamp]: String(record.timestamp),
      [DLQ_HEADERS.consumer]: consumer,
      [DLQ_HEADERS.failedAt]: new Date().toISOString(),
    },
  };
}
