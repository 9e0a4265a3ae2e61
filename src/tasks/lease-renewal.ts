/**
 * @module One renewal pass over a worker's leases, and the messages of the lease thread: what
 * the main thread's keepers and the thread itself share.
 */
import type { RedisOptions } from "../infra/redis.ts";
import type { Renewal } from "../jobs/lease.ts";
import type { TaskBroker } from "./broker.ts";
import type { TableEntry } from "./lease-table.ts";

export { renewEvery } from "../jobs/lease.ts";

/** A run's lease: `[refcode, token]`. */
export type Lease = [refcode: string, token: string];

/**
 * The renewal of the job core's lease pattern for tasks: renews the given runs' leases,
 * skipping those past their hard deadline (a handler stuck for ever loses its task, once).
 *
 * @param broker the broker
 * @param entries the runs
 * @param leaseMs new lease length
 * @returns the runs whose lease was lost, and those asked to cancel (`ended`)
 */
export async function renewLeases(
  broker: TaskBroker,
  entries: Iterable<TableEntry>,
  leaseMs: number,
): Promise<Renewal<TableEntry>> {
  const now = Date.now();
  const due = new Map<string, TableEntry>();
  for (const entry of entries) if (entry.until > now) due.set(entry.refcode, entry);
  if (due.size === 0) return { lost: [], ended: [] };
  const { lost, cancel } = await broker.renew(
    [...due.values()].map((e) => [e.refcode, e.token]),
    leaseMs,
  );
  return { lost: lost.map((r) => due.get(r)!), ended: cancel.map((r) => due.get(r)!) };
}

/**
 * The `[refcode, token]` pairs of some runs.
 *
 * @param entries the runs
 * @returns their leases
 */
export const toLeases = (entries: readonly TableEntry[]): Lease[] =>
  entries.map((e) => [e.refcode, e.token]);

/** Messages from the main thread to the lease thread. */
export type ToThread =
  | {
    op: "init";
    redisUrl: string;
    redis: RedisOptions;
    keyPrefix: string;
    leaseMs: number;
    logLevel: string;
    table: SharedArrayBuffer;
  }
  | { op: "stop" };

/** Messages from the lease thread to the main thread. */
export type FromThread =
  | { op: "ready" }
  | { op: "renewed"; lost: Lease[]; cancel: Lease[] }
  | { op: "stopped" };
