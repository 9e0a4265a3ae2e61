// The Node peers' adapters: the same client libraries as ours (node-redis 6.3.1, kafkajs 2.2.4)
// with the same options as src/infra/redis.ts and src/infra/kafka.ts (RESP2, no per-command
// timeout, no offline queue; an idempotent producer, one request in flight, acks from all
// in-sync replicas). Without KAFKA_BROKERS, publishing is skipped, as our embedded bus costs
// next to nothing.
import { createClient } from "redis";
import kafkajs from "kafkajs";

export const prefix = process.env.KEY_PREFIX ?? "peer";
export const topic = `${process.env.TOPIC_PREFIX ?? ""}orders`;
export const orderKey = (id) => `${prefix}:{order:${id}}`;
export const ordersAllKey = `${prefix}:{orders}:all`;

export async function connectRedis() {
  const client = createClient({
    url: process.env.REDIS_URL,
    RESP: 2,
    commandOptions: { timeout: 0 },
    disableOfflineQueue: true,
    socket: { connectTimeout: 2000 },
  });
  client.on("error", () => {});
  await client.connect();
  return client;
}

export async function connectProducer() {
  const brokers = process.env.KAFKA_BROKERS;
  if (!brokers) return { publish: async () => {}, disconnect: async () => {} };
  const kafka = new kafkajs.Kafka({
    clientId: `${prefix}-peer`,
    brokers: brokers.split(","),
    logLevel: kafkajs.logLevel.NOTHING,
  });
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: kafkajs.Partitioners.DefaultPartitioner,
    retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: 3 },
  });
  await producer.connect();
  return {
    publish: (key, value) => producer.send({ topic, acks: -1, messages: [{ key, value }] }),
    disconnect: () => producer.disconnect(),
  };
}

/** Stores a new order (one MULTI) and publishes it, as our POST /orders does; returns it. */
export async function createOrder(redis, bus, { item, qty }) {
  const id = crypto.randomUUID();
  const created_at = new Date().toISOString();
  await redis.multi()
    .hSet(orderKey(id), { id, item, qty, processed: "0", created_at })
    .sAdd(ordersAllKey, id)
    .exec();
  await bus.publish(id, JSON.stringify({ id, item, qty, processed: false, created_at }));
  return { id, item, qty, processed: false };
}

/** Reads an order (one HMGET), as our GET /orders/{id} does; undefined when unknown. */
export async function readOrder(redis, id) {
  const [found, item, qty, processed] = await redis.hmGet(orderKey(id), [
    "id",
    "item",
    "qty",
    "processed",
  ]);
  return found ? { id: found, item, qty: Number(qty), processed: processed === "1" } : undefined;
}

/** The order input check both peers use (what our valibot schema says). */
export function orderInputError(body) {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return "not an object";
  for (const k of Object.keys(body)) if (k !== "item" && k !== "qty") return `unknown key ${k}`;
  if (typeof body.item !== "string" || body.item.length < 1 || body.item.length > 200) {
    return "item must be a string of 1 to 200 characters";
  }
  if (!Number.isInteger(body.qty) || body.qty < 1 || body.qty > 1_000_000) {
    return "qty must be an integer from 1 to 1000000";
  }
  return undefined;
}
