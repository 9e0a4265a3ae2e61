/**
 * @module Every Redis key and channel of the scheduler, under `KEY_PREFIX`. A schedule's keys
 * share the hash tag `{sched:<name>}`, so its scripts touch one Redis Cluster slot.
 */
import { key } from "../infra/store.ts";

/** The keys of one schedule. */
export interface ScheduleKeys {
  /** Hash: `claimed` = the newest instant (epoch ms) up to which ticks are claimed. */
  state: string;
  /** String: id of the run holding the overlap lock, with a lease (PX). */
  lock: string;
  /** List: run ids, newest first, at most `RUNS_KEPT`. */
  runs: string;
  /** Prefix of a run's hash: `<runPrefix><id>`. */
  runPrefix: string;
  /** Prefix of a run's liveness key (PX lease while it runs): `<alivePrefix><id>`. */
  alivePrefix: string;
}

/**
 * The keys of one schedule.
 *
 * @param prefix `KEY_PREFIX`
 * @param name the schedule's name
 * @returns its keys, e.g. `svc:{sched:heartbeat}:runs`
 */
export function scheduleKeys(prefix: string, name: string): ScheduleKeys {
  const tag = `sched:${name}`;
  return {
    state: key(prefix, tag, "state"),
    lock: key(prefix, tag, "lock"),
    runs: key(prefix, tag, "runs"),
    runPrefix: `${key(prefix, tag, "run")}:`,
    alivePrefix: `${key(prefix, tag, "alive")}:`,
  };
}

/**
 * List of manual-run requests (`POST /schedules/{name}/run`) waiting for a scheduler replica;
 * JSON `{"name","id","at"}` entries, pushed left, popped right.
 *
 * @param prefix `KEY_PREFIX`
 * @returns the key
 */
export function manualQueueKey(prefix: string): string {
  return key(prefix, "sched", "manual");
}

/**
 * Pub/sub channel that wakes scheduler replicas when a manual run is queued.
 *
 * @param prefix `KEY_PREFIX`
 * @returns the channel
 */
export function wakeChannel(prefix: string): string {
  return key(prefix, "sched", "wake");
}
