/**
 * @module Roles `consumer` and `bulk-consumer`: one service per definition of that kind.
 */
import type { Runtime, Service } from "../runtime.ts";
import { BULK_CONSUMERS, CONSUMERS } from "./define.ts";
import { ConsumerService } from "./consumer.ts";
import { BulkConsumerService } from "./bulk-consumer.ts";

/**
 * The services of role `consumer`.
 *
 * @param rt the runtime
 * @returns one per `defineConsumer` definition
 */
export function consumerServices(rt: Runtime): Service[] {
  return rt.system.all(CONSUMERS).map((def) => new ConsumerService(rt, def));
}

/**
 * The services of role `bulk-consumer`.
 *
 * @param rt the runtime
 * @returns one per `defineBulkConsumer` definition
 */
export function bulkConsumerServices(rt: Runtime): Service[] {
  return rt.system.all(BULK_CONSUMERS).map((def) => new BulkConsumerService(rt, def));
}
