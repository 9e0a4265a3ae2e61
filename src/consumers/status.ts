/**
 * @module What every consumer process reports to the store, so any process (the dashboard,
 * `GET /consumers`) sees lag, membership and dead letters cluster-wide.
 */
import { key, toHash } from "../infra/store.ts";
import type { Store } from "../infra/store.ts";
import type { PartitionOffset } from "../infra/bus-consumer.ts";
import type { Runtime } from "../runtime.ts";
import { BULK_CONSUMERS, CONSUMERS } from "./define.ts";

/** How often a consumer writes its status. */
export const REPORT_INTERVAL_MS = 2000;
/** A status not refreshed for this long belongs to a process that is gone. */
export const STATUS_TTL_MS = 3 * REPORT_INTERVAL_MS;

/** One consumer in one process, as reported. */
export interface ConsumerStatus {
  name: string;
  kind: "consumer" | "bulk-consumer";
  topic: string;
  group: string;
  instance: string;
  in_group: boolean;
  lag: number;
  partitions: { partition: number; lag: number }[];
  reported_at: string;
}

/** A consumer across every process, as `GET /consumers` shows it. */
export interface ConsumerSummary {
  name: string;
  kind: "consumer" | "bulk-consumer";
  topic: string;
  group: string;
  /** Processes in the group now, with the partitions each owns. */
  members: {
    instance: string;
    in_group: boolean;
    partitions: { partition: number; lag: number }[];
  }[];
  lag: number;
  dead_lettered: number;
}

const _statusKey = (prefix: string) => key(prefix, "consumers", "status");
const _deadKey = (prefix: string) => key(prefix, "consumers", "dead-lettered");

/**
 * Writes one consumer's status (one field per consumer and process, with its time).
 *
 * @param store the store
 * @param prefix `KEY_PREFIX`
 * @param status what to report, without `reported_at`
 * @param lag the lag per owned partition
 */
export async function reportStatus(
  store: Store,
  prefix: string,
  status: Omit<ConsumerStatus, "reported_at" | "lag" | "partitions">,
  lag: PartitionOffset[],
): Promise<void> {
  const partitions = lag.map((p) => ({ partition: p.partition, lag: p.offset }));
  const full: ConsumerStatus = {
    ...status,
    partitions,
    lag: partitions.reduce((n, p) => n + p.lag, 0),
    reported_at: new Date().toISOString(),
  };
  await store.command([
    "HSET",
    _statusKey(prefix),
    `${status.name}|${status.instance}`,
    JSON.stringify(full),
  ]);
}

/**
 * Removes one process's status (at shutdown).
 *
 * @param store the store
 * @param prefix `KEY_PREFIX`
 * @param name the consumer
 * @param instance the process
 */
export async function clearStatus(
  store: Store,
  prefix: string,
  name: string,
  instance: string,
): Promise<void> {
  await store.command(["HDEL", _statusKey(prefix), `${name}|${instance}`]);
}

/**
 * Counts dead letters cluster-wide.
 *
 * @param store the store
 * @param prefix `KEY_PREFIX`
 * @param name the consumer
 * @param count how many were dead-lettered
 */
export async function countDeadLetters(
  store: Store,
  prefix: string,
  name: string,
  count: number,
): Promise<void> {
  await store.command(["HINCRBY", _deadKey(prefix), name, count]);
}

/**
 * Every defined consumer with its live members, total lag and dead letters. Statuses older
 * than `STATUS_TTL_MS` (processes that died) are left out and removed.
 *
 * @param rt the runtime (its definitions name the consumers)
 * @param now the time (tests)
 * @returns one summary per consumer definition
 */
export async function listConsumers(rt: Runtime, now = Date.now()): Promise<ConsumerSummary[]> {
  const prefix = rt.config.keyPrefix;
  const [statusReply, deadReply] = await rt.store.pipeline([["HGETALL", _statusKey(prefix)], [
    "HGETALL",
    _deadKey(prefix),
  ]]);
  const dead = toHash(deadReply);
  const defs = [
    ...rt.system.all(CONSUMERS),
    ...rt.system.all(BULK_CONSUMERS),
  ];
  const byName = new Map<string, ConsumerSummary>(defs.map((d) => [d.name, {
    name: d.name,
    kind: d.kind,
    topic: rt.topic(d.topic),
    group: `${prefix}.${d.group ?? d.name}`,
    members: [],
    lag: 0,
    dead_lettered: Number(dead[d.name] ?? 0),
  }]));
  const stale: string[] = [];
  for (const [field, json] of Object.entries(toHash(statusReply))) {
    const s = JSON.parse(json) as ConsumerStatus;
    const summary = byName.get(s.name);
    if (now - Date.parse(s.reported_at) > STATUS_TTL_MS) stale.push(field);
    else if (summary) {
      summary.members.push({
        instance: s.instance,
        in_group: s.in_group,
        partitions: s.partitions,
      });
      summary.lag += s.lag;
    }
  }
  if (stale.length) await rt.store.command(["HDEL", _statusKey(prefix), ...stale]);
  return [...byName.values()];
}
