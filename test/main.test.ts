import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  cleanup,
  getJson,
  postJson,
  runProgram,
  spawnProgram,
  unique,
  waitFor,
} from "./helpers.ts";

test.after(cleanup);

test("ROLE=bogus exits 2 with one line naming ROLE", async () => {
  const { code, stderr } = await runProgram({ ROLE: "bogus" });
  assert.is(code, 2);
  const lines = stderr.trim().split("\n");
  assert.is(lines.length, 1, stderr);
  assert.match(lines[0], /^ROLE: /);
});

test("PORT=abc exits 2 with one line naming PORT", async () => {
  const { code, stderr } = await runProgram({ PORT: "abc" });
  assert.is(code, 2);
  assert.match(stderr.trim(), /^PORT: .*"abc"/);
});

test("a malformed REDIS_URL exits 2 naming REDIS_URL", async () => {
  const { code, stderr } = await runProgram({ REDIS_URL: "localhost:6379" });
  assert.is(code, 2);
  assert.match(stderr.trim(), /^REDIS_URL: /);
});

test("the default start serves every HTTP route of the example in embedded mode", async () => {
  const p = await spawnProgram({ KEY_PREFIX: unique("t") });
  const created = await postJson(`${p.url}/orders`, { item: "pen", qty: 1 });
  assert.is(created.status, 201);
  const order = await created.json();
  assert.is((await fetch(`${p.url}/orders/${order.id}`)).status, 200);
  const doc = await (await fetch(`${p.url}/openapi.json`)).json();
  assert.ok(doc.paths["/orders"]);
  assert.is((await fetch(`${p.url}/readyz`)).status, 200);
  const status = await p.stop();
  assert.is(status.code, 0);
});

test("SIGTERM while 50 requests are in flight: every one is answered, exit 0", async () => {
  const p = await spawnProgram({ ROLE: "http", SHUTDOWN_TIMEOUT_MS: "10000" }, {
    entry: "test/fixtures/slow-program.ts",
  });
  const inflight = Array.from(
    { length: 50 },
    () =>
      fetch(`${p.url}/slow?ms=1500`).then(async (r) => ({
        status: r.status,
        body: await r.json(),
      })),
  );
  await waitFor(
    async () => (await getJson(`${p.url}/slow/arrived`)).arrived === 50,
    10_000,
    "the 50 requests in their handlers",
  );
  p.kill("SIGTERM");
  const results = await Promise.all(inflight);
  assert.ok(
    results.every((r) => r.status === 200 && r.body.slept_ms === 1500),
    JSON.stringify(results.slice(0, 3)),
  );
  const status = await p.exited;
  assert.is(status.code, 0);
  assert.ok(p.logs.some((l) => l.includes('"shutting down"')));
});

test("HOST is the address the server binds", async () => {
  const p = await spawnProgram({ ROLE: "http", HOST: "127.0.0.1" });
  assert.is(JSON.parse(p.logs.find((l) => l.includes('"listening"'))!).host, "127.0.0.1");
  assert.is((await fetch(`${p.url}/healthz`)).status, 200);
  assert.is((await p.stop()).code, 0);
  const { code, stderr } = await runProgram({ HOST: "not a host" });
  assert.is(code, 2);
  assert.match(stderr.trim(), /^HOST: /);
});

test("a role named in ROLE with nothing to run exits 2 naming it; under all it is left out with a warning", async () => {
  const slow = "test/fixtures/slow-program.ts"; // routes only: no consumer, task, schedule…
  const { code, stderr } = await runProgram({ ROLE: "http,bulk-consumer" }, slow);
  assert.is(code, 2);
  assert.is(
    stderr.trim(),
    'ROLE: "bulk-consumer" has nothing to run: the system defines no bulk consumer (defineBulkConsumer)',
  );
  const p = await spawnProgram({ ROLE: "all" }, { entry: slow });
  const left = p.logs.filter((l) => l.includes('"role left out"')).map((l) => JSON.parse(l).role);
  assert.equal(left, ["scheduler", "consumer", "bulk-consumer", "async-worker", "parallel-worker"]);
  assert.is((await fetch(`${p.url}/slow?ms=1`)).status, 200);
  assert.is((await p.stop()).code, 0);
});

test.run();
