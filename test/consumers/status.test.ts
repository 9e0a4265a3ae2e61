import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  countDeadLetters,
  listConsumers,
  reportStatus,
  STATUS_TTL_MS,
} from "../../src/consumers/status.ts";
import { createApp } from "../../src/app.ts";
import { exampleSystem } from "../../src/example/mod.ts";
import { backends, cleanup, testRuntime } from "../helpers.ts";

test.after(cleanup);

for (const backend of backends()) {
  const make = () => testRuntime({ redis: backend.name === "redis", system: exampleSystem() });
  const member = (rt: ReturnType<typeof make>, instance: string, inGroup = true) => ({
    name: "orders",
    kind: "consumer" as const,
    topic: `${rt.config.topicPrefix}orders`,
    group: `${rt.config.keyPrefix}.orders`,
    instance,
    in_group: inGroup,
  });

  test(`[${backend.name}] listConsumers() lists every defined consumer, with no member before reports`, async () => {
    const rt = make();
    const list = await listConsumers(rt);
    assert.equal(list.map((c) => [c.name, c.kind, c.members.length, c.lag, c.dead_lettered]), [
      ["orders", "consumer", 0, 0, 0],
      ["events", "bulk-consumer", 0, 0, 0],
    ]);
    assert.is(list[0].topic, `${rt.config.topicPrefix}orders`);
  });

  test(`[${backend.name}] reportStatus() members add up their lag; dead letters count cluster-wide`, async () => {
    const rt = make();
    const tp = (partition: number, offset: number) => ({ topic: "x", partition, offset });
    await reportStatus(rt.store, rt.config.keyPrefix, member(rt, "a"), [tp(0, 5), tp(1, 2)]);
    await reportStatus(rt.store, rt.config.keyPrefix, member(rt, "b"), [tp(2, 10)]);
    await countDeadLetters(rt.store, rt.config.keyPrefix, "orders", 2);
    await countDeadLetters(rt.store, rt.config.keyPrefix, "orders", 1);
    const orders = (await listConsumers(rt)).find((c) => c.name === "orders")!;
    assert.is(orders.lag, 17);
    assert.is(orders.dead_lettered, 3);
    assert.equal(orders.members.map((m) => m.instance).sort(), ["a", "b"]);
    assert.equal(orders.members.find((m) => m.instance === "a")!.partitions, [{
      partition: 0,
      lag: 5,
    }, { partition: 1, lag: 2 }]);
  });

  test(`[${backend.name}] listConsumers() drops and removes the status of a process that stopped reporting`, async () => {
    const rt = make();
    await reportStatus(rt.store, rt.config.keyPrefix, member(rt, "gone"), []);
    const later = Date.now() + STATUS_TTL_MS + 1000;
    assert.is((await listConsumers(rt, later)).find((c) => c.name === "orders")!.members.length, 0);
    assert.is((await listConsumers(rt)).find((c) => c.name === "orders")!.members.length, 0);
  });

  test(`[${backend.name}] GET /consumers answers the summaries`, async () => {
    const rt = make();
    await reportStatus(rt.store, rt.config.keyPrefix, member(rt, "a", false), []);
    const app = createApp(rt, { api: true, services: () => [], routes: [] });
    const res = await app.request("/consumers");
    assert.is(res.status, 200);
    const body = await res.json();
    assert.equal(body[0].members, [{ instance: "a", in_group: false, partitions: [] }]);
  });
}

test.run();
