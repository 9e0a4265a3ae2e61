/**
 * @module Every Redis key and pub/sub channel of async tasks, built in this one file.
 *
 * All keys share the hash tag `{tasks}`, so a task's record, the queues it moves through and the
 * indexes that list it sit on one Redis Cluster slot and each script touches one slot only (the
 * Asynq layout: one queue, one slot). Scripts that reach a record or a per-type list they learn
 * about while running (a type read from a record) build its key from {@link TaskKeys.base}, the
 * same string these functions start with.
 */
import { key } from "../infra/store.ts";

const TAG = "tasks";

/** The keys and channels of one deployment's tasks (one `KEY_PREFIX`). */
export interface TaskKeys {
  /** `svc:{tasks}:` — what every key below starts with (scripts append to it). */
  base: string;
  /** Hash of one task: status, input, result, error, progress, attempts, times, lease. */
  record(refcode: string): string;
  /** List of refcodes waiting to run, oldest first (RPUSH, LPOP). */
  pending(type: string): string;
  /** Sorted set of refcodes waiting for a retry or a delayed start; score = due time (ms). */
  scheduled(type: string): string;
  /** Sorted set of running refcodes; score = lease expiry (ms, Redis server time). */
  active: string;
  /** Sorted set of refcodes in a terminal status; score = when they entered it (ms). */
  status(status: "completed" | "failed" | "cancelled"): string;
  /** String `refcode fingerprint` of one `Idempotency-Key` (hashed), kept 24 h. */
  idempotency(keyHash: string): string;
  /** Channel: a task of type `<message>` became ready to claim. */
  readyChannel: string;
  /** Channel: `<refcode>` was asked to cancel while running. */
  cancelChannel: string;
  /** Channel of one task: its status once it is terminal (long-polls subscribe to it). */
  doneChannel(refcode: string): string;
  /** What {@link TaskKeys.doneChannel} starts with (scripts append the refcode). */
  donePrefix: string;
}

/**
 * Builds the keys of async tasks under a prefix.
 *
 * @param prefix `KEY_PREFIX`
 * @returns the keys and channels
 * @example
 * ```ts
 * taskKeys("svc").pending("sleep"); // "svc:{tasks}:pending:sleep"
 * ```
 */
export function taskKeys(prefix: string): TaskKeys {
  const base = `${key(prefix, TAG)}:`;
  return {
    base,
    record: (refcode) => `${base}t:${refcode}`,
    pending: (type) => `${base}pending:${type}`,
    scheduled: (type) => `${base}scheduled:${type}`,
    active: `${base}active`,
    status: (status) => `${base}status:${status}`,
    idempotency: (keyHash) => `${base}idem:${keyHash}`,
    readyChannel: `${base}ready`,
    cancelChannel: `${base}cancel`,
    doneChannel: (refcode) => `${base}done:${refcode}`,
    donePrefix: `${base}done:`,
  };
}
