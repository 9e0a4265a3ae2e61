/**
 * @module The HTTP benchmark's baseline: a bare Hono app on Deno.serve with the same routes and
 * the same store and bus adapters, but no middleware, no schema library and no OpenAPI.
 */
import { Hono } from "hono";
import { RedisStore } from "../../src/infra/redis.ts";
import { MemoryStore } from "../../src/infra/memory-store.ts";
import { KafkaBus } from "../../src/infra/kafka.ts";
import { MemoryBus } from "../../src/infra/memory-bus.ts";
import { createLogger } from "../../src/log.ts";
import { toHash } from "../../src/infra/store.ts";

const log = createLogger("error");
const redisUrl = Deno.env.get("REDIS_URL");
const brokers = Deno.env.get("KAFKA_BROKERS");
const prefix = Deno.env.get("KEY_PREFIX") ?? "bare";
const topic = `${Deno.env.get("TOPIC_PREFIX") ?? ""}orders`;
const store = redisUrl ? new RedisStore(redisUrl, log) : new MemoryStore();
const bus = brokers ? new KafkaBus(brokers.split(","), log, { clientId: prefix }) : new MemoryBus();

const app = new Hono();
app.post("/orders", async (c) => {
  const input = await c.req.json();
  if (typeof input?.item !== "string" || !Number.isInteger(input?.qty) || input.qty < 1) {
    return c.json({ error: "bad input" }, 400);
  }
  const id = crypto.randomUUID();
  const created_at = new Date().toISOString();
  await store.multi([
    [
      "HSET",
      `${prefix}:{order:${id}}`,
      "id",
      id,
      "item",
      input.item,
      "qty",
      input.qty,
      "processed",
      "0",
      "created_at",
      created_at,
    ],
    ["SADD", `${prefix}:{orders}:all`, id],
  ]);
  await bus.publish(topic, [{
    key: id,
    value: JSON.stringify({ id, item: input.item, qty: input.qty, processed: false, created_at }),
  }]);
  return c.json({ id, item: input.item, qty: input.qty, processed: false }, 201);
});
app.get("/orders/:id", async (c) => {
  const hash = toHash(await store.command(["HGETALL", `${prefix}:{order:${c.req.param("id")}}`]));
  if (!hash.id) return c.json({ error: "not found" }, 404);
  return c.json({
    id: hash.id,
    item: hash.item,
    qty: Number(hash.qty),
    processed: hash.processed === "1",
  });
});

const server = Deno.serve({
  port: Number(Deno.env.get("PORT") ?? 0),
  hostname: "127.0.0.1",
  onListen: () => {},
}, app.fetch);
console.log(JSON.stringify({ msg: "listening", port: server.addr.port }));
Deno.addSignalListener("SIGTERM", async () => {
  await server.shutdown();
  await Promise.allSettled([bus.close(), store.close()]);
  Deno.exit(0);
});
