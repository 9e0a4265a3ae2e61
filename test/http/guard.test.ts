import { test } from "uvu";
import * as assert from "uvu/assert";
import { createApp } from "../../src/app.ts";
import { MAX_HEADER_BYTES } from "../../src/http/guard.ts";
import { exampleSystem } from "../../src/example/mod.ts";
import { cleanup, freePort, testRuntime } from "../helpers.ts";

test.after(cleanup);

const openApp = () => {
  const system = exampleSystem();
  const rt = testRuntime({ system });
  return createApp(rt, { api: true, services: () => [], routes: system.routeModules });
};

const JSON_TYPE = { "content-type": "application/json" };

async function problemOf(res: Response, status: number): Promise<{ detail: string }> {
  assert.is(res.status, status);
  assert.is(res.headers.get("content-type"), "application/problem+json");
  return await res.json();
}

test("open mode: simple cross-site POSTs (text/plain, forms) run nothing: 415", async () => {
  const app = openApp();
  for (
    const [path, type, body] of [
      ["/tasks/orders-report", "text/plain", "{}"],
      ["/tasks/orders-report", "application/x-www-form-urlencoded", "a=1"],
      ["/tasks/orders-report", "multipart/form-data; boundary=x", "--x--"],
      ["/schedules/heartbeat/run", "text/plain", ""],
      ["/orders", "text/plain", JSON.stringify({ item: "a", qty: 1 })],
    ]
  ) {
    const res = await app.request(path, {
      method: "POST",
      headers: { "content-type": type },
      body,
    });
    const p = await problemOf(res, 415);
    assert.match(p.detail, /application\/json/, path);
  }
  // A body-taking route without any content type is 415 too.
  await problemOf(await app.request("/tasks/orders-report", { method: "POST" }), 415);
  // JSON, also with parameters or a +json suffix, passes.
  for (
    const type of ["application/json", "application/json; charset=utf-8", "application/x+json"]
  ) {
    const res = await app.request("/tasks/orders-report", {
      method: "POST",
      headers: { "content-type": type },
      body: "{}",
    });
    assert.is(res.status, 202, type);
  }
  // Bodiless actions still need no content type.
  assert.is((await app.request("/schedules/heartbeat/run", { method: "POST" })).status, 202);
});

test("a browser request from another site cannot change state: 403", async () => {
  const app = openApp();
  const run = (headers: Record<string, string>) =>
    app.request("http://svc.local/schedules/heartbeat/run", { method: "POST", headers });
  await problemOf(await run({ "sec-fetch-site": "cross-site" }), 403);
  await problemOf(await run({ "sec-fetch-site": "same-site" }), 403);
  await problemOf(await run({ origin: "https://evil.example" }), 403);
  await problemOf(await run({ origin: "null" }), 403);
  assert.is((await run({ "sec-fetch-site": "same-origin" })).status, 202);
  assert.is((await run({ "sec-fetch-site": "none" })).status, 202);
  assert.is((await run({ origin: "http://svc.local", host: "svc.local" })).status, 202);
  // Reads stay open to other sites (nothing changes).
  const read = await app.request("/schedules", { headers: { "sec-fetch-site": "cross-site" } });
  assert.is(read.status, 200);
});

test("strict shapes: [] is no task input, events data is an object, no unknown run keys", async () => {
  const app = openApp();
  const post = (path: string, body: string) =>
    app.request(path, { method: "POST", headers: JSON_TYPE, body });
  const arr = await problemOf(await post("/tasks/orders-report", "[]"), 400);
  assert.match(JSON.stringify(arr), /must be an object/);
  await problemOf(await post("/tasks/sleep", "[]"), 400);
  const event = { type: "t", at: new Date().toISOString() };
  await problemOf(await post("/events", JSON.stringify([{ ...event, data: [] }])), 400);
  await problemOf(await post("/events", JSON.stringify([{ ...event, data: [1, 2] }])), 400);
  assert.is((await post("/events", JSON.stringify([{ ...event, data: { a: 1 } }]))).status, 202);
  const run = { task_id: "primes", worker_count: 1, input: { from: 0, to: 10 } };
  for (const extra of ['"extra":1', '"__proto__":{"polluted":true}']) {
    const body = JSON.stringify(run).replace(/^\{/, `{${extra},`);
    const p = await problemOf(await post("/parallel-tasks", body), 400) as unknown as {
      issues: { path: string; message: string }[];
    };
    assert.ok(p.issues.length > 0, body);
  }
  assert.is(({} as Record<string, unknown>).polluted, undefined);
  await problemOf(await post("/parallel-tasks", JSON.stringify({ ...run, input: [] })), 400);
  assert.is((await post("/parallel-tasks", JSON.stringify(run))).status, 202);
});

test("an oversized header the app sees answers 431 problem+json", async () => {
  const app = openApp();
  const big = "x".repeat(MAX_HEADER_BYTES + 1);
  const p = await problemOf(
    await app.request("/tasks/orders-report", { headers: { "x-big": big } }),
    431,
  );
  assert.match(p.detail, /x-big/);
  await problemOf(
    await app.request("/tasks/orders-report", {
      method: "POST",
      headers: { ...JSON_TYPE, "idempotency-key": big },
      body: "{}",
    }),
    431,
  );
  // Many headers under the single limit, together over the total.
  const many: Record<string, string> = {};
  for (let i = 0; i < 8; i++) many[`x-h${i}`] = "y".repeat(MAX_HEADER_BYTES - 10);
  await problemOf(await app.request("/healthz", { headers: many }), 431);
  // An Idempotency-Key over 255 characters (below the header limit) is a 400.
  await problemOf(
    await app.request("/tasks/orders-report", {
      method: "POST",
      headers: { ...JSON_TYPE, "idempotency-key": "k".repeat(256) },
      body: "{}",
    }),
    400,
  );
});

test("over a real socket: a 40 KB header gets 431 problem+json, not a reset", async () => {
  const port = freePort();
  const app = openApp();
  const server = Deno.serve({ port, hostname: "127.0.0.1", onListen: () => {} }, app.fetch);
  try {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`, {
      headers: { "idempotency-key": "k".repeat(40_000) },
    });
    await problemOf(res, 431);
  } finally {
    await server.shutdown();
  }
});

test("over a real socket: a body that stops arriving gets 408 problem+json", async () => {
  const system = exampleSystem();
  const rt = testRuntime({ system });
  const app = createApp(rt, {
    api: true,
    services: () => [],
    routes: system.routeModules,
    bodyTimeoutMs: 300,
  });
  const port = freePort();
  const server = Deno.serve({ port, hostname: "127.0.0.1", onListen: () => {} }, app.fetch);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(
      "POST /tasks/orders-report HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
        "Content-Length: 100\r\n\r\n{",
    ));
    // Deno keeps the socket open after the answer until the client sends the rest or leaves
    // (measured; only a proxy closes it): read until the whole answer is in.
    let text = "";
    const buf = new Uint8Array(4096);
    while (!/\r\n\r\n[\s\S]*\}$/.test(text)) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    assert.match(text, /^HTTP\/1\.1 408 /);
    assert.match(text, /connection: close/i);
    assert.match(text, /content-type: application\/problem\+json/i);
    assert.match(text, /did not arrive within 300 ms/);
  } finally {
    conn.close();
    await server.shutdown();
  }
});

test.run();
