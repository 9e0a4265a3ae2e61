/**
 * @module Redis keys of the example system (orders and events), shared by its HTTP routes,
 * consumers and tasks.
 */
import { key } from "@svc/runtime";

// Redis Cluster: an order, the sets that count it and the consumer's markers share one slot per
// deployment (KEY_PREFIX inside the hash tag, so two deployments do not share it), so creating an
// order is one single-slot MULTI and processing it one script; the events log, its counters and
// markers likewise, so a batch is one atomic write.
const _orders = (prefix: string) => `${prefix}:orders`;
const _events = (prefix: string) => `${prefix}:events`;

/**
 * An order's hash: `id`, `item`, `qty`, `processed` (`0`/`1`), `created_at`.
 *
 * @param prefix `KEY_PREFIX`
 * @param id the order id
 * @returns the key
 */
export function orderKey(prefix: string, id: string): string {
  return key(prefix, _orders(prefix), "order", id);
}

/**
 * Set of every order id (what `orders-report` counts as orders).
 *
 * @param prefix `KEY_PREFIX`
 * @returns the key
 */
export function ordersAllKey(prefix: string): string {
  return key(prefix, _orders(prefix), "all");
}

/**
 * Set of processed order ids (what `orders-report` counts as processed).
 *
 * @param prefix `KEY_PREFIX`
 * @returns the key
 */
export function ordersProcessedKey(prefix: string): string {
  return key(prefix, _orders(prefix), "processed");
}

/**
 * Hash of the bulk consumer's counters: `stored` (events written) and `batches`.
 *
 * @param prefix `KEY_PREFIX`
 * @returns the key
 */
export function eventsStatsKey(prefix: string): string {
  return key(prefix, _events(prefix), "stats");
}

/**
 * List of the events the bulk consumer stored (JSON, newest last, the newest
 * `EVENTS_KEPT` kept).
 *
 * @param prefix `KEY_PREFIX`
 * @returns the key
 */
export function eventsLogKey(prefix: string): string {
  return key(prefix, _events(prefix), "log");
}

/** How many stored events `eventsLogKey` keeps. */
export const EVENTS_KEPT = 100_000;
