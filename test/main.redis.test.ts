import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  cleanup,
  freePort,
  readyzStatus,
  redisServer,
  spawnProgram,
  unique,
  waitFor,
} from "./helpers.ts";

test.after(cleanup);

test("stopping Redis turns /readyz 503 naming redis, /healthz stays 200; restarting recovers", async () => {
  const port = freePort();
  let redis = await redisServer(port);
  const p = await spawnProgram({
    ROLE: "http",
    REDIS_URL: `redis://127.0.0.1:${port}`,
    KEY_PREFIX: unique("t"),
  });
  await waitFor(
    async () => (await readyzStatus(p.url)) === 200,
    10_000,
    "ready",
  );

  redis.kill("SIGKILL");
  await redis.status;
  const down = await waitFor(
    async () => {
      const r = await fetch(`${p.url}/readyz`);
      const body = await r.json();
      return r.status === 503 ? body : undefined;
    },
    10_000,
    "readyz 503",
  );
  assert.ok(down.failing.includes("redis"), JSON.stringify(down));
  assert.is(down.checks.redis.status, "failing");
  const health = await fetch(`${p.url}/healthz`);
  assert.is(health.status, 200);
  await health.body?.cancel();
  const during = await fetch(`${p.url}/orders/x`);
  assert.is(during.status, 503);
  assert.is(during.headers.get("content-type"), "application/problem+json");
  await during.body?.cancel();

  redis = await redisServer(port);
  await waitFor(
    async () => (await readyzStatus(p.url)) === 200,
    15_000,
    "readyz back to 200",
  );
  assert.is((await p.stop()).code, 0);
});

for (const role of ["all", "scheduler"]) {
  test(`ROLE=${role} with Redis and Kafka unreachable opens its port at once: /healthz 200, /readyz names them; Redis back → ready`, async () => {
    const port = freePort();
    const t0 = Date.now();
    const p = await spawnProgram({
      ROLE: role,
      REDIS_URL: `redis://127.0.0.1:${port}`,
      KAFKA_BROKERS: `127.0.0.1:${freePort()}`,
      KEY_PREFIX: unique("t"),
    }, { timeoutMs: 15_000 });
    const listenedMs = Date.now() - t0;
    const health = await fetch(`${p.url}/healthz`);
    assert.is(health.status, 200);
    await health.body?.cancel();
    const ready = await fetch(`${p.url}/readyz`);
    const body = await ready.json();
    assert.is(ready.status, 503);
    assert.ok(body.failing.includes("redis"), JSON.stringify(body));
    assert.ok(body.failing.includes("kafka"), JSON.stringify(body));
    console.log(`ROLE=${role}: listening ${listenedMs} ms after spawn; failing: ${body.failing}`);
    assert.is((await p.stop()).code, 0);
  });
}

test("ROLE=all with Redis down at start-up becomes ready once Redis comes up", async () => {
  const port = freePort();
  const p = await spawnProgram({
    ROLE: "all",
    REDIS_URL: `redis://127.0.0.1:${port}`,
    KEY_PREFIX: unique("t"),
  });
  const health = await fetch(`${p.url}/healthz`);
  assert.is(health.status, 200);
  await health.body?.cancel();
  await redisServer(port);
  await waitFor(
    async () => (await readyzStatus(p.url)) === 200,
    20_000,
    "readyz 200 once Redis is up",
  );
  assert.is((await p.stop()).code, 0);
});

test.run();
