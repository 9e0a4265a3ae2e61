/**
 * @module The example system's HTTP part: orders and events (API.md), written as a user would.
 */
import * as v from "valibot";
import {
  describeRoute,
  HttpProblem,
  jsonContent,
  problemResponse,
  type RouteModule,
  validate,
} from "@svc/runtime";
import { eventsStatsKey, orderKey, ordersAllKey } from "./keys.ts";

const OrderInput = v.strictObject({
  item: v.pipe(v.string(), v.minLength(1), v.maxLength(200)),
  qty: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(1_000_000)),
});

const Order = v.object({
  id: v.string(),
  item: v.string(),
  qty: v.number(),
  processed: v.boolean(),
});

const OrderParams = v.object({ id: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,64}$/)) });

const Event = v.strictObject({
  type: v.pipe(v.string(), v.minLength(1), v.maxLength(100)),
  at: v.pipe(v.string(), v.isoTimestamp()),
  data: v.pipe(
    v.custom<unknown>((data) => !Array.isArray(data), "must be an object, not an array"),
    v.record(v.string(), v.unknown()),
  ),
});

const EventsInput = v.pipe(v.array(Event), v.minLength(1), v.maxLength(1000));

const Accepted = v.object({ accepted: v.number() });
const EventStats = v.object({ stored: v.number(), batches: v.number() });

/**
 * `POST /orders`, `GET /orders/{id}`, `POST /events`, `GET /events/stats`.
 *
 * @param app the Hono app
 * @param rt the runtime
 */
export const exampleRoutes: RouteModule = (app, rt) => {
  const prefix = rt.config.keyPrefix;

  app.post(
    "/orders",
    describeRoute({
      tags: ["example"],
      summary: "Create an order; the orders consumer marks it processed",
      responses: {
        201: { description: "Created", content: jsonContent(Order) },
        400: problemResponse("Invalid order"),
      },
    }),
    validate("json", OrderInput),
    async (c) => {
      const input = c.req.valid("json");
      const id = crypto.randomUUID();
      const order = { id, item: input.item, qty: input.qty, processed: false };
      const created_at = new Date().toISOString();
      await rt.store.multi([
        [
          "HSET",
          orderKey(prefix, id),
          "id",
          id,
          "item",
          order.item,
          "qty",
          order.qty,
          "processed",
          "0",
          "created_at",
          created_at,
        ],
        ["SADD", ordersAllKey(prefix), id],
      ]);
      try {
        // Durable on REDIS_WAIT_REPLICAS replicas before it is published and answered 201.
        await rt.store.replicate([orderKey(prefix, id), ordersAllKey(prefix)]);
        await rt.bus.publish("orders", [{
          key: id,
          value: JSON.stringify({ ...order, created_at }),
        }]);
      } catch (err) {
        // Not published means never processed: take the order back so the client may retry.
        await rt.store.multi([["DEL", orderKey(prefix, id)], ["SREM", ordersAllKey(prefix), id]])
          .catch(() => {});
        throw err;
      }
      c.header("location", `/orders/${id}`);
      return c.json(order, 201);
    },
  );

  app.get(
    "/orders/:id",
    describeRoute({
      tags: ["example"],
      summary: "Read an order",
      responses: {
        200: { description: "The order", content: jsonContent(Order) },
        404: problemResponse("Unknown order"),
      },
    }),
    validate("param", OrderParams),
    async (c) => {
      const { id } = c.req.valid("param");
      const [found, item, qty, processed] = await rt.store.command([
        "HMGET",
        orderKey(prefix, id),
        "id",
        "item",
        "qty",
        "processed",
      ]) as (string | null)[];
      if (!found) throw new HttpProblem(404, `Order "${id}" does not exist`);
      return c.json({ id: found, item, qty: Number(qty), processed: processed === "1" });
    },
  );

  app.post(
    "/events",
    describeRoute({
      tags: ["example"],
      summary: "Publish 1..1000 events; the events bulk consumer stores them",
      responses: {
        202: { description: "Accepted", content: jsonContent(Accepted) },
        400: problemResponse("Invalid events"),
      },
    }),
    validate("json", EventsInput),
    async (c) => {
      const events = c.req.valid("json");
      await rt.bus.publish(
        "events",
        events.map((event) => ({ key: crypto.randomUUID(), value: JSON.stringify(event) })),
      );
      return c.json({ accepted: events.length }, 202);
    },
  );

  app.get(
    "/events/stats",
    describeRoute({
      tags: ["example"],
      summary: "What the events bulk consumer has written",
      responses: { 200: { description: "Counters", content: jsonContent(EventStats) } },
    }),
    async (c) => {
      const [stored, batches] = await rt.store.command(
        ["HMGET", eventsStatsKey(prefix), "stored", "batches"],
      ) as (string | null)[];
      return c.json({ stored: Number(stored ?? 0), batches: Number(batches ?? 0) });
    },
  );
};
