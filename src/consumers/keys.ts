/**
 * @module Redis keys of the consumers: the markers of effects applied once.
 */
import { key } from "../infra/store.ts";

/**
 * The marker of one effect applied once. The scope (a consumer's group) is the hash tag, so
 * the markers of one consumer share a Redis Cluster slot.
 *
 * @param prefix `KEY_PREFIX`
 * @param scope the consumer group
 * @param identity the effect's identity (message id, order id…)
 * @returns e.g. `svc:{once:orders}:t/0/42`
 */
export function onceMarkerKey(prefix: string, scope: string, identity: string): string {
  return key(prefix, `once:${scope}`, identity);
}
