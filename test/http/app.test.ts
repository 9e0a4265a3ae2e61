import { test } from "uvu";
import * as assert from "uvu/assert";
import * as v from "valibot";
import { Validator } from "@seriousme/openapi-schema-validator";
import { createApp } from "../../src/app.ts";
import { withoutAddresses } from "../../src/http/probes.ts";
import { validate } from "../../src/http/routes.ts";
import { System } from "../../src/system.ts";
import { exampleSystem } from "../../src/example/mod.ts";
import { cleanup, testRuntime } from "../helpers.ts";

test.after(cleanup);

const appWith = (env: Record<string, string> = {}, system = exampleSystem()) => {
  const rt = testRuntime({ env, system });
  return { rt, app: createApp(rt, { api: true, services: () => [], routes: system.routeModules }) };
};

const post = (_path: string, body: string, headers: Record<string, string> = {}) => ({
  method: "POST",
  body,
  headers: { "content-type": "application/json", ...headers },
});

test("GET /healthz answers 200 ok", async () => {
  const { app } = appWith();
  const res = await app.request("/healthz");
  assert.is(res.status, 200);
  assert.equal(await res.json(), { status: "ok" });
  assert.is(res.headers.get("x-request-id"), null);
  const traced = await app.request("/healthz", { headers: { "x-request-id": "abc-123" } });
  assert.is(traced.headers.get("x-request-id"), "abc-123");
});

test("GET /readyz answers ready with the embedded checks, 503 once stopping", async () => {
  const { app, rt } = appWith();
  let res = await app.request("/readyz");
  assert.is(res.status, 200);
  const body = await res.json();
  assert.is(body.status, "ready");
  assert.is(body.checks.redis.status, "ok");
  assert.is(body.checks.kafka.status, "ok");
  rt.stopping = true;
  res = await app.request("/readyz");
  assert.is(res.status, 503);
  assert.ok((await res.json()).failing.includes("shutdown"));
});

test("GET /metrics is Prometheus text with HTTP counters", async () => {
  const { app } = appWith();
  await app.request("/healthz");
  const res = await app.request("/metrics");
  assert.is(res.status, 200);
  assert.match(res.headers.get("content-type")!, /text\/plain/);
  assert.match(
    await res.text(),
    /http_requests_total\{method="GET",route="\/healthz",status="200"\} 1/,
  );
});

test("a bad body answers 400 problem+json with issues", async () => {
  const { app } = appWith();
  const res = await app.request("/orders", post("/orders", JSON.stringify({ item: "", qty: 1.5 })));
  assert.is(res.status, 400);
  assert.is(res.headers.get("content-type"), "application/problem+json");
  const body = await res.json();
  assert.is(body.status, 400);
  assert.is(body.title, "Bad Request");
  assert.equal(body.issues.map((i: { path: string }) => i.path).sort(), ["item", "qty"]);
});

test("malformed JSON answers 400 problem+json", async () => {
  const { app } = appWith();
  const res = await app.request("/orders", post("/orders", "{not json"));
  assert.is(res.status, 400);
  assert.is(res.headers.get("content-type"), "application/problem+json");
});

test("a body over 1 MiB answers 413, with or without Content-Length", async () => {
  const { app } = appWith();
  const big = JSON.stringify({ item: "x".repeat(2 * 1024 * 1024), qty: 1 });
  let res = await app.request("/orders", post("/orders", big));
  assert.is(res.status, 413);
  assert.is(res.headers.get("content-type"), "application/problem+json");
  // Chunked over a real socket: no Content-Length, the limit is counted while reading.
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, app.fetch);
  try {
    const chunk = new TextEncoder().encode("x".repeat(64 * 1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 2 * 1024 * 1024) return controller.close();
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    });
    res = await fetch(`http://127.0.0.1:${server.addr.port}/orders`, {
      method: "POST",
      body: stream,
      headers: { "content-type": "application/json" },
      // @ts-ignore: Deno's fetch takes duplex for streamed bodies
      duplex: "half",
    });
    assert.is(res.status, 413);
    await res.body?.cancel();
    // With Content-Length, as most clients send: refused from the header, before any read.
    res = await fetch(`http://127.0.0.1:${server.addr.port}/orders`, {
      method: "POST",
      body: big,
      headers: { "content-type": "application/json" },
    });
    assert.is(res.status, 413);
    assert.is(res.headers.get("content-type"), "application/problem+json");
    await res.body?.cancel();
    // A body within the limit with Content-Length goes through to the route.
    res = await fetch(`http://127.0.0.1:${server.addr.port}/orders`, {
      method: "POST",
      body: JSON.stringify({ item: "x", qty: 1 }),
      headers: { "content-type": "application/json" },
    });
    assert.is(res.status, 201);
    await res.body?.cancel();
  } finally {
    await server.shutdown();
  }
});

test("API_KEYS: missing or wrong key answers 401, right key passes, probes stay open", async () => {
  const { app } = appWith({ API_KEYS: "k1,k2" });
  assert.is((await app.request("/orders/abc")).status, 401);
  const wrong = await app.request("/orders/abc", { headers: { authorization: "Bearer nope" } });
  assert.is(wrong.status, 401);
  assert.is(wrong.headers.get("content-type"), "application/problem+json");
  assert.is(
    (await app.request("/orders/abc", { headers: { authorization: "Bearer k2" } })).status,
    404,
  );
  for (const p of ["/healthz", "/readyz", "/metrics"]) {
    assert.is((await app.request(p)).status, 200, p);
  }
  assert.is((await app.request("/openapi.json")).status, 401);
});

/** Series of the HTTP metrics in a /metrics text. */
const httpSeries = (text: string) =>
  text.split("\n").filter((l) => /^http_request(s_total|_duration_seconds_count)\{/.test(l));

const randomToken = (length: number) =>
  Array.from(
    crypto.getRandomValues(new Uint8Array(length)),
    (b) => "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~"[b % 77],
  ).join("");

test("metric labels stay a closed set under random methods, paths and task types", async () => {
  const { app } = appWith({ API_KEYS: "k1" });
  const auth = { authorization: "Bearer k1" };
  const flood = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const noise = crypto.randomUUID();
      await app.request(`/${noise}`, { method: randomToken(100) });
      await app.request(`/${noise}`, { method: randomToken(100), headers: auth });
      await app.request(`/orders/${noise}`, { headers: auth });
      await app.request(`/tasks/${noise}`, { headers: auth });
      await app.request(`/tasks/${noise}`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: "{}",
      });
      await app.request(`/schedules/${noise}/run`, { method: "POST", headers: auth });
      await app.request(`/parallel-tasks/capacity?task_id=${noise}&items=1&deadline_ms=1`, {
        headers: auth,
      });
    }
  };
  await app.request("/metrics");
  await flood(40);
  const first = await (await app.request("/metrics")).text();
  const series = httpSeries(first).length;
  await flood(40);
  const again = await (await app.request("/metrics")).text();
  assert.equal(
    httpSeries(again).map((l) => l.replace(/ \d+$/, "")),
    httpSeries(first).map((l) => l.replace(/ \d+$/, "")),
    "a second flood of new names adds no series",
  );
  assert.ok(series < 40, `${series} series`);
  assert.match(again, /http_requests_total\{method="other",route="unmatched",status="401"\} 80/);
  // No client-chosen name reaches any metric.
  for (const line of again.split("\n").filter((l) => !l.startsWith("#"))) {
    const labels = /\{(.*)\}/.exec(line)?.[1] ?? "";
    for (const [, value] of labels.matchAll(/="([^"]*)"/g)) {
      assert.ok(value.length < 60, `label value ${value.slice(0, 80)} in ${line.slice(0, 120)}`);
    }
  }
});

test("GET /readyz shows no address without a key, and the whole detail with one", async () => {
  const detail = "connect ECONNREFUSED 10.1.2.3:6379 (redis://u:p@redis.internal:6379/0)";
  const failing = {
    name: "store-link",
    start: () => Promise.resolve(),
    stop: () => Promise.resolve(),
    check: () => Promise.resolve({ ok: false, detail }),
  };
  for (const env of [{}, { API_KEYS: "k1" }] as Record<string, string>[]) {
    const rt = testRuntime({ env, system: exampleSystem() });
    const app = createApp(rt, { api: true, services: () => [failing], routes: [] });
    const open = await (await app.request("/readyz")).json();
    assert.is(open.checks["store-link"].status, "failing");
    assert.not.match(open.checks["store-link"].detail, /10\.1|redis\.internal|6379/);
    assert.match(open.checks["store-link"].detail, /ECONNREFUSED <address>/);
    const wrong = await (await app.request("/readyz", {
      headers: { authorization: "Bearer nope" },
    })).json();
    assert.not.match(wrong.checks["store-link"].detail, /10\.1/);
    if (rt.config.apiKeys.length) {
      const keyed = await (await app.request("/readyz", {
        headers: { authorization: "Bearer k1" },
      })).json();
      assert.is(keyed.checks["store-link"].detail, detail);
    }
  }
});

test("withoutAddresses() hides URLs, host:port, IPv4, IPv6 and looked-up names", () => {
  for (
    const [given, shown] of [
      ["getaddrinfo ENOTFOUND redis-primary", "getaddrinfo ENOTFOUND <address>"],
      ["connect ECONNREFUSED [::1]:9092", "connect ECONNREFUSED <address>"],
      ["connect ECONNREFUSED ::1:9092", "connect ECONNREFUSED <address>"],
      ["broker kafka-0.kafka.svc:9093 is down", "broker <address> is down"],
      ["timeout after 2000 ms", "timeout after 2000 ms"],
      ["check timed out", "check timed out"],
    ]
  ) assert.is(withoutAddresses(given), shown, given);
});

test("an unknown route answers 404 problem+json carrying the request id", async () => {
  const { app } = appWith();
  const res = await app.request("/nope");
  assert.is(res.status, 404);
  assert.is(res.headers.get("content-type"), "application/problem+json");
  const id = (await res.json()).request_id;
  assert.match(id, /^[0-9a-f]{12}-[0-9a-z]+$/);
  // Each request its own id.
  assert.is.not((await (await app.request("/nope")).json()).request_id, id);
});

test("a handler's unexpected error answers 500 problem+json without details", async () => {
  const system = new System().routes((app) => {
    app.get("/boom", () => {
      throw new Error("secret internals");
    });
  });
  const { app } = appWith({}, system);
  const res = await app.request("/boom");
  assert.is(res.status, 500);
  assert.not.match(await res.text(), /secret internals/);
});

test("routes: a static path beside a parameter on the same method, several parameters, HEAD", async () => {
  const system = new System().routes((app) => {
    app.post("/things/special", (c) => c.json({ route: "special" }));
    app.post("/things/:name", (c) => c.json({ route: "param", name: c.req.param("name") }));
    app.post(
      "/things/:id/parts/:part",
      (c) => c.json({ id: c.req.param("id"), part: c.req.param("part") }),
    );
    app.get("/things/:name", (c) => c.json({ route: "get", name: c.req.param("name") }));
  });
  const { app } = appWith({}, system);
  const json = async (path: string, method = "POST") =>
    await (await app.request(path, { method })).json();
  assert.equal(await json("/things/special"), { route: "special" });
  assert.equal(await json("/things/other"), { route: "param", name: "other" });
  assert.equal(await json("/things/a%20b"), { route: "param", name: "a b" });
  assert.equal(await json("/things/7/parts/x"), { id: "7", part: "x" });
  assert.equal(await json("/things/n", "GET"), { route: "get", name: "n" });
  const head = await app.request("/things/n", { method: "HEAD" });
  assert.is(head.status, 200);
  assert.is(await head.text(), "");
  assert.is((await app.request("/things/special/more", { method: "POST" })).status, 404);
  assert.is((await app.request("/things/n", { method: "DELETE" })).status, 404);
});

test("validate() documents and checks query parameters", async () => {
  const system = new System().routes((app) => {
    app.get(
      "/q",
      validate("query", v.object({ n: v.pipe(v.string(), v.regex(/^\d+$/)) })),
      (c) => c.json(c.req.valid("query")),
    );
  });
  const { app } = appWith({}, system);
  assert.is((await app.request("/q?n=x")).status, 400);
  assert.equal(await (await app.request("/q?n=5")).json(), { n: "5" });
});

test("BODY_LIMIT_BYTES sets the largest body: one byte over answers 413 naming the limit", async () => {
  const { app } = appWith({ BODY_LIMIT_BYTES: "100" });
  const body = JSON.stringify({ item: "x".repeat(100), qty: 1 });
  const res = await app.request("/orders", post("/orders", body));
  assert.is(res.status, 413);
  assert.match((await res.json()).detail, "100 bytes");
  const small = await app.request(
    "/orders",
    post("/orders", JSON.stringify({ item: "x", qty: 1 })),
  );
  assert.is(small.status, 201);
});

test("SERVICE_NAME is the OpenAPI title and the dashboard's", async () => {
  const { app } = appWith({ SERVICE_NAME: "billing" });
  assert.is((await (await app.request("/openapi.json")).json()).info.title, "billing");
  assert.match(await (await app.request("/dashboard")).text(), "<title>billing dashboard</title>");
});

test("GET /openapi.json is a valid OpenAPI 3.1 document naming every example route", async () => {
  const { app } = appWith();
  const res = await app.request("/openapi.json");
  assert.is(res.status, 200);
  const doc = await res.json();
  assert.is(doc.openapi, "3.1.0");
  const validator = new Validator();
  const result = await validator.validate(doc);
  assert.ok(result.valid, JSON.stringify(result.errors));
  for (const p of ["/orders", "/orders/{id}", "/events", "/events/stats"]) {
    assert.ok(doc.paths[p], p);
  }
});

test.run();
