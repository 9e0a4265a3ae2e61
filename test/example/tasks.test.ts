import { test } from "uvu";
import * as assert from "uvu/assert";
import { createApp } from "../../src/app.ts";
import { exampleSystem } from "../../src/example/mod.ts";
import { ordersAllKey, ordersProcessedKey } from "../../src/example/keys.ts";
import { TaskWorker } from "../../src/tasks/worker.ts";
import { backends, cleanup, onCleanup, testRuntime, waitFor } from "../helpers.ts";

test.after(cleanup);

const post = (body: unknown) => ({
  method: "POST",
  body: JSON.stringify(body),
  headers: { "content-type": "application/json" },
});

for (const backend of backends()) {
  const name = (s: string) => `[${backend.name}] ${s}`;
  const make = async () => {
    const rt = testRuntime({ redis: backend.name === "redis", system: exampleSystem() });
    const worker = new TaskWorker(rt, { types: ["sleep", "orders-report"] });
    await worker.start();
    onCleanup(() => worker.stop(Date.now() + 2000));
    const app = createApp(rt, { api: true, services: () => [], routes: [] });
    const enqueue = async (type: string, input: unknown) =>
      (await (await app.request(`/tasks/${type}`, post(input))).json()).refcode as string;
    const read = async (refcode: string, wait = 0) =>
      await (await app.request(`/tasks/${refcode}${wait ? `?wait=${wait}` : ""}`)).json();
    return { rt, app, enqueue, read };
  };

  test(name("sleep reports progress and returns {slept_ms}"), async () => {
    const { enqueue, read } = await make();
    const refcode = await enqueue("sleep", { ms: 600 });
    const mid = await waitFor(
      async () => {
        const view = await read(refcode);
        return view.progress > 0 && view.progress < 1 && view;
      },
      5000,
      "progress between 0 and 1",
    );
    assert.is(mid.status, "in_progress");
    const done = await read(refcode, 10);
    assert.equal([done.status, done.result, done.progress], ["completed", { slept_ms: 600 }, 1]);
  });

  test(name("sleep {fail:true} is failed after 3 attempts within seconds"), async () => {
    const { enqueue, read } = await make();
    const started = Date.now();
    const refcode = await enqueue("sleep", { ms: 1, fail: true });
    const view = await read(refcode, 15);
    assert.equal([view.status, view.attempts], ["failed", 3]);
    assert.match(view.error, /failed on purpose/);
    assert.ok(Date.now() - started < 5000, `${Date.now() - started} ms`);
  });

  test(name("sleep honours cancellation"), async () => {
    const { app, enqueue, read } = await make();
    const refcode = await enqueue("sleep", { ms: 60_000 });
    await waitFor(async () => (await read(refcode)).status === "in_progress", 5000);
    assert.is((await app.request(`/tasks/${refcode}`, { method: "DELETE" })).status, 202);
    const view = await read(refcode, 2);
    assert.equal([view.status, view.attempts], ["cancelled", 1]);
  });

  test(name("sleep rejects input outside its schema"), async () => {
    const { app } = await make();
    for (const input of [{}, { ms: -1 }, { ms: 600_001 }, { ms: 1.5 }, { ms: 1, fail: "yes" }]) {
      assert.is(
        (await app.request("/tasks/sleep", post(input))).status,
        400,
        JSON.stringify(input),
      );
    }
  });

  test(name("orders-report counts orders and processed orders"), async () => {
    const { rt, enqueue, read } = await make();
    const prefix = rt.config.keyPrefix;
    await rt.store.command(["SADD", ordersAllKey(prefix), "a", "b", "c"]);
    await rt.store.command(["SADD", ordersProcessedKey(prefix), "a"]);
    const view = await read(await enqueue("orders-report", {}), 10);
    assert.equal([view.status, view.result], ["completed", { orders: 3, processed: 1 }]);
  });
}

test.run();
