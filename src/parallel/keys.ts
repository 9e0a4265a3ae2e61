/**
 * @module Every Redis key and channel of parallel tasks. A run's keys share the hash tag
 * `{prun:<refcode>}` so its scripts touch one cluster slot; a task's index of active runs has
 * its own tag.
 */
import { key } from "../infra/store.ts";

/** The keys of one run, in the order every run script receives them as KEYS. */
export interface RunKeys {
  /** Hash: refcode, task_id, worker_count, status, total, done, lease_ms, max_attempts, times. */
  run: string;
  /** List of chunk indexes waiting for a thread. */
  pending: string;
  /** Sorted set: claimed chunk index (or `merge`) → lease expiry, epoch ms. */
  leases: string;
  /** Hash: claimed chunk index (or `merge`) → the claim's token. */
  owners: string;
  /** Hash: chunk index → claims so far. */
  attempts: string;
  /** Hash: chunk index → the chunk (JSON). */
  chunks: string;
  /** Hash: chunk index → its result (JSON). */
  results: string;
}

/**
 * The keys of one run.
 *
 * @param prefix `KEY_PREFIX`
 * @param refcode the run's refcode
 * @returns its keys
 */
export function runKeys(prefix: string, refcode: string): RunKeys {
  const tag = `prun:${refcode}`;
  return {
    run: key(prefix, tag, "run"),
    pending: key(prefix, tag, "pending"),
    leases: key(prefix, tag, "leases"),
    owners: key(prefix, tag, "owners"),
    attempts: key(prefix, tag, "attempts"),
    chunks: key(prefix, tag, "chunks"),
    results: key(prefix, tag, "results"),
  };
}

/**
 * The keys of one run as a script's KEYS list (the order of {@link RunKeys}).
 *
 * @param keys the run's keys
 * @returns `[run, pending, leases, owners, attempts, chunks, results]`
 */
export function runKeyList(keys: RunKeys): string[] {
  return [
    keys.run,
    keys.pending,
    keys.leases,
    keys.owners,
    keys.attempts,
    keys.chunks,
    keys.results,
  ];
}

/**
 * Sorted set of a task's runs that may still have work: refcode → created_at (epoch ms).
 * Workers scan it oldest first; a run leaves it when it ends.
 *
 * @param prefix `KEY_PREFIX`
 * @param taskId the task's name
 * @returns the key
 */
export function activeRunsKey(prefix: string, taskId: string): string {
  return key(prefix, `ptask:${taskId}`, "active");
}

/**
 * Pub/sub channel of parallel tasks: `run <task_id> <refcode>` (work to claim) and
 * `stop <refcode>` (the run ended: abort its chunks).
 *
 * @param prefix `KEY_PREFIX`
 * @returns the channel name
 */
export function eventsChannel(prefix: string): string {
  return key(prefix, "parallel", "events");
}
