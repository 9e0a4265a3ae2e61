import { test } from "uvu";
import * as assert from "uvu/assert";
import { createApp } from "../../src/app.ts";
import { exampleSystem } from "../../src/example/mod.ts";
import { taskClient } from "../../src/tasks/client.ts";
import { backends, cleanup, testRuntime } from "../helpers.ts";

test.after(cleanup);

for (const backend of backends()) {
  const make = (env: Record<string, string> = {}) => {
    const rt = testRuntime({ redis: backend.name === "redis", system: exampleSystem(), env });
    return { rt, app: createApp(rt, { api: true, services: () => [] }) };
  };

  test(`[${backend.name}] GET /dashboard renders tasks, parallel runs, schedules and consumers`, async () => {
    const { rt, app } = make();
    const { refcode } = await taskClient(rt).enqueue("sleep", { ms: 10 });
    const res = await app.request("/dashboard");
    assert.is(res.status, 200);
    assert.match(res.headers.get("content-type")!, /text\/html/);
    const page = await res.text();
    for (const id of ["tasks", "parallel", "schedules", "consumers"]) {
      assert.match(page, `<section id="${id}">`);
    }
    assert.match(page, `data-refcode="${refcode}" data-status="queued"`);
    assert.match(page, 'data-schedule="orders-report-nightly"');
    assert.match(page, 'data-consumer="events"');
    assert.match(page, `data-url="/tasks/${refcode}"`);
  });

  test(`[${backend.name}] the dashboard escapes what it shows`, async () => {
    const { rt, app } = make();
    const { refcode } = await taskClient(rt).enqueue("sleep", { ms: 10 });
    await rt.store.command([
      "HSET",
      `${rt.config.keyPrefix}:{t:${refcode}}:task`,
      "error",
      "<script>x</script>",
    ]).catch(() => {});
    const page = await (await app.request("/dashboard")).text();
    assert.not.match(page, "<script>x</script>");
  });

  test(`[${backend.name}] GET /dashboard/stream sends the sections as server-sent events`, async () => {
    const { app } = make();
    const controller = new AbortController();
    const res = await app.request("/dashboard/stream", { signal: controller.signal });
    assert.is(res.status, 200);
    assert.match(res.headers.get("content-type")!, /text\/event-stream/);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n\n")) text += (await reader.read()).value ?? "";
    assert.match(text, /^event: sections\ndata: .*<section id="tasks">/);
    controller.abort();
    await reader.cancel();
  });

  test(`[${backend.name}] with API_KEYS the dashboard asks for the key, and takes it from the cookie`, async () => {
    const { app } = make({ API_KEYS: "k1" });
    const denied = await app.request("/dashboard");
    assert.is(denied.status, 401);
    assert.match(await denied.text(), /API key/);
    assert.is(
      (await app.request("/dashboard", { headers: { cookie: "svc_api_key=nope" } })).status,
      401,
    );
    assert.is(
      (await app.request("/dashboard", { headers: { cookie: "a=b; svc_api_key=k1" } })).status,
      200,
    );
    // The cookie opens only the dashboard's pages, never the API (its actions send the header).
    assert.is(
      (await app.request("/tasks?status=failed", { headers: { cookie: "svc_api_key=k1" } })).status,
      401,
    );
    assert.is(
      (await app.request("/dashboard", { headers: { cookie: "svc_api_key=%E0%A4%A" } })).status,
      401,
    );
  });
}

test.run();
