import { test } from "uvu";
import * as assert from "uvu/assert";
import { createApp } from "../../src/app.ts";
import { exampleSystem } from "../../src/example/mod.ts";
import { MemoryBus } from "../../src/infra/memory-bus.ts";
import { ROLE_FACTORIES } from "../../src/roles.ts";
import { backends, cleanup, onCleanup, testRuntime, waitFor } from "../helpers.ts";

test.after(cleanup);

for (const backend of backends()) {
  const make = () => {
    const system = exampleSystem();
    const rt = testRuntime({ redis: backend.name === "redis", system });
    return {
      rt,
      app: createApp(rt, { api: true, services: () => [], routes: system.routeModules }),
    };
  };
  const json = (body: unknown) => ({
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json" },
  });

  test(`[${backend.name}] POST /orders stores the order, GET /orders/{id} reads it back`, async () => {
    const { app } = make();
    const res = await app.request("/orders", json({ item: "book", qty: 2 }));
    assert.is(res.status, 201);
    const order = await res.json();
    assert.equal({ ...order, id: "x" }, { id: "x", item: "book", qty: 2, processed: false });
    assert.is(res.headers.get("location"), `/orders/${order.id}`);
    const got = await app.request(`/orders/${order.id}`);
    assert.is(got.status, 200);
    assert.equal(await got.json(), order);
  });

  test(`[${backend.name}] GET /orders/{id} of an unknown order answers 404`, async () => {
    const { app } = make();
    assert.is((await app.request("/orders/unknown-id")).status, 404);
    assert.is((await app.request("/orders/bad%20id")).status, 400);
  });

  test(`[${backend.name}] POST /events accepts 1..1000 events and rejects 0 or 1001`, async () => {
    const { app } = make();
    const ev = { type: "click", at: new Date().toISOString(), data: { x: 1 } };
    const res = await app.request("/events", json([ev, ev]));
    assert.is(res.status, 202);
    assert.equal(await res.json(), { accepted: 2 });
    assert.is((await app.request("/events", json([]))).status, 400);
    assert.is((await app.request("/events", json(Array(1001).fill(ev)))).status, 400);
    const bad = await app.request("/events", json([{ ...ev, at: "yesterday" }]));
    assert.is(bad.status, 400);
    assert.is((await bad.json()).issues[0].path, "0.at");
  });

  test(`[${backend.name}] GET /events/stats starts at zero`, async () => {
    const { app } = make();
    assert.equal(await (await app.request("/events/stats")).json(), { stored: 0, batches: 0 });
  });
}

test("POST /events answers 503 while the embedded bus is full, 202 again once consumed", async () => {
  const system = exampleSystem();
  const rt = testRuntime({ system, bus: new MemoryBus({ maxBytes: 300_000 }) });
  const app = createApp(rt, { api: true, services: () => [], routes: system.routeModules });
  const events = (n: number) =>
    JSON.stringify(
      Array.from({ length: n }, () => ({
        type: "big",
        at: new Date().toISOString(),
        data: { pad: "p".repeat(10_000) },
      })),
    );
  const post = () =>
    app.request("/events", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: events(10),
    });
  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) statuses.push((await post()).status);
  assert.equal(statuses, [202, 202, 503, 503, 503]);
  const full = await post();
  assert.is(full.headers.get("content-type"), "application/problem+json");
  assert.is(full.headers.get("retry-after"), "1");
  assert.match((await full.json()).detail, /embedded bus is full/);
  for (const service of ROLE_FACTORIES["bulk-consumer"]!(rt)) {
    await service.start();
    onCleanup(() => service.stop(Date.now() + 2000));
  }
  await waitFor(async () => (await post()).status === 202, 10_000, "room again");
});

test.run();
