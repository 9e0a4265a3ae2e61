/**
 * The example consumers `orders` and `events` (issue 4's acceptance), driven over HTTP like a
 * client would, on the embedded bus and store and on Kafka with Redis. The counts are the
 * acceptance numbers unless `TEST_ORDERS` / `TEST_EVENTS` scale them down.
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { start } from "../../src/main.ts";
import { exampleSystem } from "../../src/example/mod.ts";
import { eventsLogKey, orderKey, ordersProcessedKey } from "../../src/example/keys.ts";
import { DLQ_HEADERS } from "../../src/consumers/dead-letter.ts";
import {
  type BusBackend,
  busBackends,
  cleanup,
  deleteKeys,
  deleteTopicsLater,
  onCleanup,
  readTopic,
  readyzStatus,
  unique,
  waitFor,
} from "../helpers.ts";

const ORDERS = Number(Deno.env.get("TEST_ORDERS") ?? 10_000);
const EVENTS = Number(Deno.env.get("TEST_EVENTS") ?? 100_000);

async function boot(backend: BusBackend) {
  const prefix = unique("t");
  const topicPrefix = `${prefix}.`;
  if (backend.name === "kafka") {
    deleteTopicsLater(["orders", "orders.dlq", "events", "events.dlq"].map((t) => topicPrefix + t));
  }
  const running = await start(exampleSystem(), {
    ROLE: "http,consumer,bulk-consumer",
    PORT: "0",
    KEY_PREFIX: prefix,
    TOPIC_PREFIX: topicPrefix,
    LOG_LEVEL: Deno.env.get("TEST_LOG_LEVEL") ?? "error",
    ...backend.env,
  });
  await running.started;
  const { rt } = running;
  onCleanup(async () => {
    await running.shutdown("test over");
    if (backend.name === "kafka") {
      const { RedisStore } = await import("../../src/infra/redis.ts");
      const store = new RedisStore(backend.env.REDIS_URL, rt.log);
      await deleteKeys({ ...rt, store }, `${prefix}:*`).catch(() => {});
      await store.close();
    }
  });
  const url = `http://127.0.0.1:${running.port}`;
  const json = async (path: string, body?: unknown) => {
    const res = await fetch(url + path, {
      method: body === undefined ? "GET" : "POST",
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status >= 300) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return await res.json();
  };
  await waitFor(
    async () => (await readyzStatus(url)) === 200,
    30_000,
    "ready (consumers in their groups)",
  );
  return { rt, url, json, prefix, topicPrefix };
}

/** Runs `work` for 0..n-1 with `concurrency` at once. */
async function pool(n: number, concurrency: number, work: (i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) await work(next++);
  }));
}

for (const backend of busBackends()) {
  const it = suite(`example consumers on ${backend.name}`);
  it.after(cleanup);

  it(`${ORDERS} orders posted are all processed, each effect applied once`, async () => {
    const { rt, json, prefix } = await boot(backend);
    const ids: string[] = [];
    await pool(ORDERS, 16, async (i) => {
      ids.push((await json("/orders", { item: `item-${i}`, qty: 1 + (i % 5) })).id);
    });
    await waitFor(
      async () => Number(await rt.store.command(["SCARD", ordersProcessedKey(prefix)])) === ORDERS,
      120_000,
      `${ORDERS} orders processed`,
      250,
    );
    const counts = await rt.store.pipeline(
      ids.map((id) => ["HGET", orderKey(prefix, id), "times_processed"]),
    );
    assert.ok(counts.every((c) => c === "1"), "every order's effect applied exactly once");
    const sample = await json(`/orders/${ids[0]}`);
    assert.is(sample.processed, true);
  });

  it("invalid JSON and schema failures on orders go to orders.dlq with error headers; later orders are processed", async () => {
    const { rt, json, topicPrefix } = await boot(backend);
    const dead = await readTopic(rt.bus, `${topicPrefix}orders.dlq`);
    await rt.bus.publish("orders", [
      { key: "bad-1", value: "{{{not json" },
      { key: "bad-2", value: JSON.stringify({ id: "x", item: "lamp", qty: -3 }) },
    ]);
    const order = await json("/orders", { item: "after", qty: 1 });
    await waitFor(
      async () => (await json(`/orders/${order.id}`)).processed,
      30_000,
      "later order processed",
    );
    await waitFor(() => dead.length === 2, 30_000, "two dead letters");
    const byKey = Object.fromEntries(dead.map((d) => [d.key, d]));
    assert.match(byKey["bad-1"].headers[DLQ_HEADERS.error], "not JSON");
    assert.match(byKey["bad-2"].headers[DLQ_HEADERS.error], "qty");
    assert.is(byKey["bad-2"].headers[DLQ_HEADERS.originalTopic], `${topicPrefix}orders`);
    const metrics = await rt.metrics.metrics();
    assert.match(metrics, /consumer_rebalances_total\{consumer="orders"\} 1\n/, "never restarted");
  });

  it(`${EVENTS} events are stored exactly once in batches; a poison event goes to events.dlq, its batch stored`, async () => {
    const { rt, json, prefix, topicPrefix } = await boot(backend);
    const dead = await readTopic(rt.bus, `${topicPrefix}events.dlq`);
    const at = new Date().toISOString();
    const requests = Math.ceil(EVENTS / 1000);
    await pool(requests, 4, async (r) => {
      const n = Math.min(1000, EVENTS - r * 1000);
      const events = Array.from({ length: n }, (_, i) => ({ type: "click", at, data: { r, i } }));
      assert.is((await json("/events", events)).accepted, n);
      if (r === Math.floor(requests / 2)) {
        await rt.bus.publish("events", [{
          key: "poison",
          value: '{"type":"click","at":"yesterday"}',
        }]);
      }
    });
    await waitFor(
      async () => (await json("/events/stats")).stored === EVENTS,
      120_000,
      `${EVENTS} events stored`,
      250,
    );
    await waitFor(() => dead.length === 1, 30_000, "the poison event dead-lettered");
    assert.is(dead[0].key, "poison");
    const stats = await json("/events/stats");
    assert.is(stats.stored, EVENTS);
    assert.ok(stats.stored / stats.batches > 10, `average batch ${stats.stored / stats.batches}`);
    assert.is(await rt.store.command(["LLEN", eventsLogKey(prefix)]), Math.min(EVENTS, 100_000));
  });

  it.run();
}
