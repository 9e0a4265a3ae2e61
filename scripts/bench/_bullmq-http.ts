/**
 * @module The tasks benchmark's baseline API: what a team builds instead of ours, a bare
 * `Deno.serve` endpoint doing one BullMQ `queue.add` per `POST /tasks/{type}` and answering 202
 * with the job id.
 *
 * Env: REDIS_URL, QUEUE, PORT.
 */
import { Queue } from "bullmq";
import { Redis as IORedis } from "ioredis";

const env = (name: string) => {
  const value = Deno.env.get(name);
  if (!value) throw new Error(`${name} is required`);
  return value;
};
const queue = new Queue(env("QUEUE"), {
  connection: new IORedis(env("REDIS_URL"), { maxRetriesPerRequest: null }),
});
await queue.waitUntilReady();
const server = Deno.serve({
  port: Number(env("PORT")),
  hostname: "127.0.0.1",
  onListen: () => {},
}, async (req) => {
  const path = new URL(req.url).pathname;
  if (req.method === "POST" && path.startsWith("/tasks/")) {
    let data: unknown;
    try {
      data = await req.json();
    } catch {
      return Response.json({ error: "bad JSON" }, { status: 400 });
    }
    const job = await queue.add(path.slice("/tasks/".length), data);
    return Response.json({ id: job.id }, { status: 202 });
  }
  if (path === "/healthz") return Response.json({ status: "ok" });
  return new Response(null, { status: 404 });
});
Deno.addSignalListener("SIGTERM", async () => {
  await server.shutdown();
  await queue.close();
  Deno.exit(0);
});
