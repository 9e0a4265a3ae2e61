/**
 * @module Redis keys of the consumers: the markers of effects applied once.
 */

/**
 * The marker of one effect applied once, keyed per message (its identity) and placed in the hash
 * tag of the effect's own key, so marker and effect sit in one Redis Cluster slot and the
 * markers spread with the data they guard. The scope (a consumer's group) keeps two consumers of
 * one message apart.
 *
 * @param prefix `KEY_PREFIX`
 * @param scope the consumer group
 * @param identity the effect's identity (message id, order id…)
 * @param tag the hash tag of the key the effect writes
 * @returns e.g. `svc:{svc:orders}:once:orders:order:42`
 */
export function onceMarkerKey(
  prefix: string,
  scope: string,
  identity: string,
  tag: string,
): string {
  return `${prefix}:{${tag}}:once:${scope}:${identity}`;
}
