/**
 * @module One renewal pass over a worker's leases, and the messages of the lease thread: what
 * the main thread's keepers and the thread itself share.
 */
import type { RedisOptions } from "../infra/redis.ts";
import type { TaskBroker } from "./broker.ts";
import type { TableEntry } from "./lease-table.ts";

/** A run's lease: `[refcode, token]`. */
export type Lease = [refcode: string, token: string];

/** How often leases are renewed: four chances per lease. */
export const renewEvery = (leaseMs: number) => Math.max(50, Math.floor(leaseMs / 4));

/**
 * Renews the given runs' leases, skipping those past their hard deadline.
 *
 * @param broker the broker
 * @param entries the runs
 * @param leaseMs new lease length
 * @returns lost runs and runs asked to cancel
 */
export async function renewLeases(
  broker: TaskBroker,
  entries: Iterable<TableEntry>,
  leaseMs: number,
): Promise<{ lost: Lease[]; cancel: Lease[] }> {
  const now = Date.now();
  const due = new Map<string, string>();
  for (const { refcode, token, until } of entries) if (until > now) due.set(refcode, token);
  if (due.size === 0) return { lost: [], cancel: [] };
  const { lost, cancel } = await broker.renew([...due], leaseMs);
  return {
    lost: lost.map((r) => [r, due.get(r)!]),
    cancel: cancel.map((r) => [r, due.get(r)!]),
  };
}

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
