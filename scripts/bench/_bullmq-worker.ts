/**
 * @module The tasks benchmark's baseline worker: a BullMQ Worker in its own process, as a team
 * runs one, with the example's `sleep` handler (wait `ms`, return `{slept_ms}`). `GET /count`
 * answers how many jobs completed; `GET /healthz` once the worker is ready.
 *
 * Env: REDIS_URL, QUEUE, CONCURRENCY, PORT.
 */
import { Worker } from "bullmq";
import { Redis as IORedis } from "ioredis";

const env = (name: string) => {
  const value = Deno.env.get(name);
  if (!value) throw new Error(`${name} is required`);
  return value;
};
let completed = 0;
const worker = new Worker(
  env("QUEUE"),
  async (job) => {
    const ms = Number(job.data?.ms ?? 0);
    await new Promise((resolve) => setTimeout(resolve, ms));
    return { slept_ms: ms };
  },
  {
    connection: new IORedis(env("REDIS_URL"), { maxRetriesPerRequest: null }),
    concurrency: Number(env("CONCURRENCY")),
  },
);
worker.on("completed", () => completed++);
await worker.waitUntilReady();
const server = Deno.serve({
  port: Number(env("PORT")),
  hostname: "127.0.0.1",
  onListen: () => {},
}, (req) => {
  const path = new URL(req.url).pathname;
  if (path === "/count") return Response.json({ completed });
  if (path === "/healthz") return Response.json({ status: "ok" });
  return new Response(null, { status: 404 });
});
Deno.addSignalListener("SIGTERM", async () => {
  await worker.close();
  await server.shutdown();
  Deno.exit(0);
});
