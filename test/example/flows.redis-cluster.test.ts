/**
 * Every example flow on the 6-node test cluster (`scripts/redis-cluster.sh`), the program told of
 * one node only: orders, events, both task types, primes, a manual schedule run and the
 * listings, with no 500 anywhere.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { cleanup, deleteKeys, spawnProgram, testRuntime, unique, waitFor } from "../helpers.ts";

test.after(cleanup);

const CLUSTER_URL = Deno.env.get("TEST_REDIS_CLUSTER_URL") ?? "redis://127.0.0.1:7000";

test("orders, events, sleep, orders-report, primes, a manual schedule run, listings: no 500", async () => {
  const prefix = unique("tx");
  const p = await spawnProgram({ ROLE: "all", REDIS_URL: CLUSTER_URL, KEY_PREFIX: prefix });
  // Keys are removed on every master at cleanup.
  const keys = testRuntime({ env: { REDIS_URL: CLUSTER_URL, KEY_PREFIX: prefix } });
  const seen: string[] = [];
  const call = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${p.url}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    seen.push(`${method} ${path} ${r.status}`);
    assert.ok(r.status < 500, `${method} ${path} → ${r.status}: ${text}`);
    return { status: r.status, body: text ? JSON.parse(text) : null };
  };
  await waitFor(async () => (await call("GET", "/readyz")).status === 200, 30_000, "ready");

  const order = await call("POST", "/orders", { item: "book", qty: 2 });
  assert.is(order.status, 201);
  await waitFor(
    async () => (await call("GET", `/orders/${order.body.id}`)).body.processed === true,
    20_000,
    "the order processed",
  );
  const events = await call("POST", "/events", [
    { type: "click", at: new Date().toISOString(), data: { n: 1 } },
    { type: "view", at: new Date().toISOString(), data: { n: 2 } },
  ]);
  assert.is(events.status, 202);
  await waitFor(
    async () => (await call("GET", "/events/stats")).body.stored === 2,
    20_000,
    "events",
  );

  const sleep = await call("POST", "/tasks/sleep", { ms: 10 });
  assert.is(sleep.status, 202);
  const report = await call("POST", "/tasks/orders-report", {});
  assert.is(report.status, 202);
  for (const { body } of [sleep, report]) {
    const done = await call("GET", `/tasks/${body.refcode}?wait=20`);
    assert.is(done.body.status, "completed", JSON.stringify(done.body));
  }
  const reportDone = await call("GET", `/tasks/${report.body.refcode}`);
  assert.equal(reportDone.body.result, { orders: 1, processed: 1 });
  const failing = await call("POST", "/tasks/sleep", { ms: 1, fail: true });
  await waitFor(
    async () =>
      (await call("GET", `/tasks/${failing.body.refcode}?wait=5`)).body.status === "failed",
    30_000,
    "the failing task failed",
  );
  assert.is((await call("POST", `/tasks/${failing.body.refcode}/retry`)).status, 202);
  const long = await call("POST", "/tasks/sleep", { ms: 60_000 });
  assert.is((await call("DELETE", `/tasks/${long.body.refcode}`)).status, 202);

  const primes = await call("POST", "/parallel-tasks", {
    task_id: "primes",
    worker_count: 2,
    input: { from: 0, to: 100_000 },
  });
  assert.is(primes.status, 202);
  await waitFor(
    async () =>
      (await call("GET", `/parallel-tasks/${primes.body.refcode}`)).body.status === "completed",
    60_000,
    "primes completed",
  );
  assert.equal((await call("GET", `/parallel-tasks/${primes.body.refcode}`)).body.result, {
    count: 9592,
  });

  assert.is((await call("POST", "/schedules/heartbeat/run")).status, 202);
  await waitFor(
    async () =>
      (await call("GET", "/schedules/heartbeat/runs?limit=5")).body.some((r: { status: string }) =>
        r.status === "completed"
      ),
    30_000,
    "the manual run completed",
  );
  for (
    const path of [
      "/schedules",
      "/tasks?status=failed",
      "/tasks?status=completed&type=sleep",
      "/consumers",
      "/parallel-tasks/capacity?task_id=primes&items=1000000&deadline_ms=60000",
      "/metrics",
      "/openapi.json",
    ]
  ) {
    const r = await fetch(`${p.url}${path}`);
    await r.body?.cancel();
    seen.push(`GET ${path} ${r.status}`);
    assert.ok(r.status < 500, `${path} → ${r.status}`);
  }
  const logs = p.logs.filter((l) => /"level":"error"|unhandled/.test(l));
  assert.equal(logs, [], "error log lines");
  const tally: Record<string, number> = {};
  for (const line of seen) tally[line.split(" ").pop()!] = (tally[line.split(" ").pop()!] ?? 0) + 1;
  console.log(
    `example flows on the cluster: ${seen.length} requests, statuses ${JSON.stringify(tally)}`,
  );
  assert.is((await p.stop()).code, 0);
  await deleteKeys(keys, `${prefix}:*`);
});

test.run();
