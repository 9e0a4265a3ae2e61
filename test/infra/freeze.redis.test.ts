/**
 * A Redis that stops answering without closing the connection (a frozen network path, through
 * `freeze-proxy.ts`): commands fail with 503 within the bound, and the connection is replaced.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { COMMAND_TIMEOUT_MS, RedisStore } from "../../src/infra/redis.ts";
import { UnavailableError } from "../../src/infra/store.ts";
import { createLogger } from "../../src/log.ts";
import { cleanup, onCleanup, REDIS_URL, spawnProgram, unique, waitFor } from "../helpers.ts";
import { startFreezeProxy } from "../freeze-proxy.ts";

test.after(cleanup);

const target = { hostname: new URL(REDIS_URL).hostname, port: Number(new URL(REDIS_URL).port) };
/** What "about 2 s" may stretch to on two busy cores before it is a hang. */
const HANG_MS = 5000;

test("RedisStore: a frozen connection fails its commands within the bound and is replaced", async () => {
  const proxy = startFreezeProxy(target);
  onCleanup(() => proxy.close());
  const store = new RedisStore(`redis://127.0.0.1:${proxy.port}`, createLogger("error"));
  onCleanup(() => store.close());
  await waitFor(async () => (await store.check()).ok, 10_000, "ready");
  const key = unique("tf");
  await store.command(["SET", key, "1"]);
  const before = proxy.accepted;

  proxy.freeze();
  const t0 = Date.now();
  const results = await Promise.all(
    Array.from({ length: 20 }, () => store.command(["GET", key]).catch((err) => err)),
  );
  const took = Date.now() - t0;
  console.log(`20 commands on a frozen connection failed after ${took} ms`);
  for (const r of results) assert.instance(r, UnavailableError);
  assert.ok(took >= COMMAND_TIMEOUT_MS - 50, `failed too early: ${took} ms`);
  assert.ok(took < HANG_MS, `took ${took} ms`);
  const check = await store.check();
  assert.is(check.ok, false);

  proxy.thaw();
  // A new connection carries the commands from now on.
  await waitFor(async () => (await store.command(["GET", key]).catch(() => null)) === "1", 10_000);
  assert.ok(proxy.accepted > before, "the frozen connection was replaced");
  await store.command(["DEL", key]);
});

test("HTTP: a request touching a frozen Redis answers 503 with Retry-After within the bound", async () => {
  const proxy = startFreezeProxy(target);
  onCleanup(() => proxy.close());
  const p = await spawnProgram({
    ROLE: "http",
    REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
    KEY_PREFIX: unique("t"),
  });
  await waitFor(
    async () =>
      (await fetch(`${p.url}/readyz`).then((r) => r.body?.cancel().then(() => r.status))) === 200,
    15_000,
    "ready",
  );
  proxy.freeze();
  const t0 = Date.now();
  const [order, task, ready] = await Promise.all([
    fetch(`${p.url}/orders/nope`),
    fetch(`${p.url}/tasks/sleep`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ms: 1 }),
    }),
    fetch(`${p.url}/readyz`),
  ]);
  const took = Date.now() - t0;
  console.log(
    `frozen Redis: GET /orders ${order.status}, POST /tasks ${task.status}, /readyz ${ready.status} after ${took} ms`,
  );
  for (const r of [order, task]) {
    assert.is(r.status, 503);
    assert.is(r.headers.get("retry-after"), "1");
    assert.is(r.headers.get("content-type"), "application/problem+json");
    await r.body?.cancel();
  }
  assert.is(ready.status, 503);
  await ready.body?.cancel();
  assert.ok(took < HANG_MS, `took ${took} ms`);
  proxy.thaw();
  await waitFor(
    async () =>
      (await fetch(`${p.url}/orders/nope`).then((r) => r.body?.cancel().then(() => r.status))) ===
        404,
    10_000,
    "404 once Redis answers again",
  );
  assert.is((await p.stop()).code, 0);
});

test.run();
