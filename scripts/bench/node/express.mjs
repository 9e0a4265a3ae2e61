// The Express peer of `deno task bench http`, as a team sets it up: Express 5, morgan's
// "combined" access log to stdout, express-prom-bundle (prom-client) with method and path labels
// and the default process metrics on GET /metrics, express.json() for bodies, a hand-written
// input check, the same routes and the same Redis and Kafka clients as ours.
import express from "express";
import morgan from "morgan";
import promBundle from "express-prom-bundle";
import {
  connectProducer,
  connectRedis,
  createOrder,
  orderInputError,
  readOrder,
} from "./adapters.mjs";

const redis = await connectRedis();
const bus = await connectProducer();
const app = express();
app.use(morgan("combined"));
app.use(
  promBundle({ includeMethod: true, includePath: true, promClient: { collectDefaultMetrics: {} } }),
);
app.use(express.json({ limit: "1mb" }));

app.get("/healthz", (_req, res) => res.json({ status: "ok" }));
app.post("/orders", async (req, res, next) => {
  try {
    const error = orderInputError(req.body);
    if (error) {
      return res.status(400).type("application/problem+json").json({ status: 400, detail: error });
    }
    const order = await createOrder(redis, bus, req.body);
    res.status(201).location(`/orders/${order.id}`).json(order);
  } catch (err) {
    next(err);
  }
});
app.get("/orders/:id", async (req, res, next) => {
  try {
    const order = await readOrder(redis, req.params.id);
    if (!order) {
      return res.status(404).type("application/problem+json").json({
        status: 404,
        detail: `Order "${req.params.id}" does not exist`,
      });
    }
    res.json(order);
  } catch (err) {
    next(err);
  }
});

const server = app.listen(Number(process.env.PORT), "127.0.0.1");
process.on("SIGTERM", () => {
  server.close();
  Promise.allSettled([redis.quit(), bus.disconnect()]).then(() => process.exit(0));
});
