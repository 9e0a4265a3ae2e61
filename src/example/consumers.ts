/**
 * @module The example system's consumers (API.md): `orders` marks each order processed, once;
 * `events` stores events in bulk, each once, and counts them for `GET /events/stats`.
 */
import * as v from "valibot";
import { APPLIED, defineBulkConsumer, defineConsumer } from "@svc/runtime";
import { EVENTS_KEPT, eventsLogKey, eventsStatsKey, orderKey, ordersProcessedKey } from "./keys.ts";

/** What `POST /orders` publishes. */
const OrderMessage = v.object({
  id: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,64}$/)),
  item: v.string(),
  qty: v.pipe(v.number(), v.integer(), v.minValue(1)),
});

/** What `POST /events` publishes, one message per event. */
const EventMessage = v.object({
  type: v.pipe(v.string(), v.minLength(1)),
  at: v.pipe(v.string(), v.isoTimestamp()),
  data: v.record(v.string(), v.unknown()),
});

/**
 * Marks an order processed. The effect (flag, time, count of times applied, processed set) is
 * applied once per order id, however often the message comes back.
 */
export const ordersConsumer = defineConsumer({
  name: "orders",
  topic: "orders",
  schema: OrderMessage,
  async handler(message, ctx) {
    const prefix = ctx.rt.config.keyPrefix;
    const { id } = message.value;
    const order = orderKey(prefix, id);
    // The order is written before it is published; absent means it was taken back.
    if (await ctx.rt.store.command(["EXISTS", order]) === 0) {
      ctx.log.warn("order not found: skipped", { order_id: id });
      return;
    }
    await ctx.once([
      ["HSET", order, "processed", "1", "processed_at", new Date().toISOString()],
      ["HINCRBY", order, "times_processed", 1],
      ["SADD", ordersProcessedKey(prefix), id],
    ], `order:${id}`);
  },
});

/**
 * Stores events in bulk: one atomic write per batch appends the events not stored before and
 * adds their number to `stored` (so redeliveries never count twice) and 1 to `batches`.
 */
export const eventsConsumer = defineBulkConsumer({
  name: "events",
  topic: "events",
  schema: EventMessage,
  maxBatchSize: 1000,
  maxWaitMs: 100,
  async handler(batch, ctx) {
    const prefix = ctx.rt.config.keyPrefix;
    const log = eventsLogKey(prefix);
    const stats = eventsStatsKey(prefix);
    await ctx.onceEach(
      batch.map((m) => ({
        id: m.id,
        commands: [["RPUSH", log, JSON.stringify({ id: m.id, ...m.value })]],
      })),
      [
        ["HINCRBY", stats, "stored", APPLIED],
        ["HINCRBY", stats, "batches", 1],
        ["LTRIM", log, -EVENTS_KEPT, -1],
      ],
    );
  },
});
