/**
 * REDIS_WAIT_REPLICAS: work is answered 201/202 only once a replica holds it. A primary and a
 * replica of this test's own (ports 16510/16511), the replica fed through a freeze proxy, so its
 * acknowledgements can be held back without stopping anything.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { cleanup, onCleanup, redisServer, spawnProgram, unique, waitFor } from "../helpers.ts";
import { startFreezeProxy } from "../freeze-proxy.ts";

test.after(cleanup);

const PRIMARY = 16510, REPLICA = 16511;

async function replicaLinked(): Promise<boolean> {
  const out = await new Deno.Command("redis-cli", {
    args: ["-p", String(REPLICA), "info", "replication"],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout).includes("master_link_status:up");
}

test("a write answered 202/201 waits for the replica; past the timeout 503, and the same Idempotency-Key later returns the same refcode", async () => {
  await redisServer(PRIMARY);
  const proxy = startFreezeProxy({ hostname: "127.0.0.1", port: PRIMARY });
  onCleanup(() => proxy.close());
  await redisServer(REPLICA, ["--replicaof", "127.0.0.1", String(proxy.port)]);
  await waitFor(replicaLinked, 15_000, "the replica to sync");

  const p = await spawnProgram({
    ROLE: "http",
    REDIS_URL: `redis://127.0.0.1:${PRIMARY}`,
    REDIS_WAIT_REPLICAS: "1",
    REDIS_WAIT_TIMEOUT_MS: "300",
    KEY_PREFIX: unique("t"),
  });
  const post = (path: string, body: unknown, key?: string) =>
    fetch(`${p.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(key ? { "idempotency-key": key } : {}) },
      body: JSON.stringify(body),
    });
  await waitFor(
    async () => {
      const r = await post("/tasks/sleep", { ms: 1 });
      await r.body?.cancel();
      return r.status === 202;
    },
    15_000,
    "a first 202",
  );

  proxy.freeze();
  const key = unique("idem");
  const held = await post("/tasks/sleep", { ms: 2 }, key);
  assert.is(held.status, 503, await held.text());
  assert.is(held.headers.get("retry-after"), "1");
  const answered503At = Date.now();
  const order = await post("/orders", { item: "x", qty: 1 });
  assert.is(order.status, 503, await order.text());
  const parallel = await post("/parallel-tasks", {
    task_id: "primes",
    worker_count: 1,
    input: { from: 0, to: 10 },
  });
  assert.is(parallel.status, 503, await parallel.text());

  proxy.thaw();
  await waitFor(replicaLinked, 15_000, "the replica to catch up");
  const again = await post("/tasks/sleep", { ms: 2 }, key);
  assert.is(again.status, 202);
  const { refcode } = await again.json();
  const third = await post("/tasks/sleep", { ms: 2 }, key);
  assert.is((await third.json()).refcode, refcode);
  // The task the 503 did not acknowledge is the one the retry returned: written before the 503.
  const task = await (await fetch(`${p.url}/tasks/${refcode}`)).json();
  assert.ok(Date.parse(task.created_at) <= answered503At, JSON.stringify(task));
  const created = await post("/orders", { item: "x", qty: 1 });
  assert.is(created.status, 201);
  await created.body?.cancel();
  assert.is((await p.stop()).code, 0);
});

test.run();
