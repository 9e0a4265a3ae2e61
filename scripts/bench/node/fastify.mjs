// The Fastify peer of `deno task bench http`, as a team sets it up: Fastify 5 with its built-in
// pino logger (`logger: true`: a JSON line when a request comes in and one when it is answered,
// to stdout), fastify-metrics with its defaults (per-route histogram and summary, default process
// metrics, GET /metrics), JSON-schema validation of the body (Fastify's ajv), the same routes
// and the same Redis and Kafka clients as ours.
import Fastify from "fastify";
import metrics from "fastify-metrics";
import { connectProducer, connectRedis, createOrder, readOrder } from "./adapters.mjs";

const redis = await connectRedis();
const bus = await connectProducer();
const app = Fastify({ logger: true });
await app.register(metrics.default ?? metrics, { endpoint: "/metrics" });

app.get("/healthz", (_req, reply) => reply.send({ status: "ok" }));
app.post("/orders", {
  schema: {
    body: {
      type: "object",
      additionalProperties: false,
      required: ["item", "qty"],
      properties: {
        item: { type: "string", minLength: 1, maxLength: 200 },
        qty: { type: "integer", minimum: 1, maximum: 1000000 },
      },
    },
  },
}, async (req, reply) => {
  const order = await createOrder(redis, bus, req.body);
  reply.code(201).header("location", `/orders/${order.id}`);
  return order;
});
app.get("/orders/:id", {
  schema: { params: { type: "object", properties: { id: { type: "string", minLength: 1 } } } },
}, async (req, reply) => {
  const order = await readOrder(redis, req.params.id);
  if (!order) {
    reply.code(404).type("application/problem+json");
    return { status: 404, title: "Not Found", detail: `Order "${req.params.id}" does not exist` };
  }
  return order;
});

await app.listen({ port: Number(process.env.PORT), host: "127.0.0.1" });
process.on("SIGTERM", async () => {
  await app.close();
  await Promise.allSettled([redis.quit(), bus.disconnect()]);
  process.exit(0);
});
