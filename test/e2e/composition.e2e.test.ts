/**
 * The example system driven as a client would, every role its own process on real Redis and
 * Kafka; then the same story with ROLE=all in one embedded process.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  cleanup,
  deleteKeys,
  deleteTopicsLater,
  getJson,
  KAFKA_BROKERS,
  onCleanup,
  postJson,
  type Program,
  REDIS_URL,
  spawnProgram,
  testRuntime,
  unique,
  waitFor,
} from "../helpers.ts";

test.after(cleanup);

const ORDERS = 60;
const EVENTS = 500;

/** The whole story against an HTTP base URL; `disrupt` runs mid-flight (kills and adds). */
async function story(api: string, disrupt: () => Promise<void> = async () => {}): Promise<void> {
  // Orders: posted → consumed → processed.
  const ids: string[] = [];
  for (let i = 0; i < ORDERS; i++) {
    const r = await postJson(`${api}/orders`, { item: `item-${i}`, qty: i + 1 });
    assert.is(r.status, 201);
    ids.push((await r.json()).id);
  }
  // Events: posted → stored in bulk.
  const at = new Date().toISOString();
  for (let i = 0; i < EVENTS; i += 100) {
    const batch = Array.from({ length: 100 }, (_, j) => ({ type: "view", at, data: { n: i + j } }));
    const r = await postJson(`${api}/events`, batch);
    assert.is(r.status, 202);
    await r.body?.cancel();
  }
  // A parallel run, started before the disruption so it spans it.
  const pr = await postJson(`${api}/parallel-tasks`, {
    task_id: "primes",
    worker_count: 2,
    input: { from: 0, to: 2_000_000 },
  });
  assert.is(pr.status, 202);
  const parallel = await pr.json();

  await disrupt();

  await waitFor(
    async () => {
      for (const id of ids) if (!(await getJson(`${api}/orders/${id}`)).processed) return false;
      return true;
    },
    90_000,
    "every order processed",
    250,
  );
  await waitFor(
    async () => (await getJson(`${api}/events/stats`)).stored === EVENTS,
    90_000,
    `${EVENTS} events stored`,
    250,
  );
  const stats = await getJson(`${api}/events/stats`);
  assert.is(stats.stored, EVENTS);
  assert.ok(stats.batches >= 1);

  // The nightly report, run now: one task whose result counts exactly this run's orders.
  const run = await fetch(`${api}/schedules/orders-report-nightly/run`, { method: "POST" });
  assert.is(run.status, 202);
  await run.body?.cancel();
  const record = await waitFor(
    async () => {
      const runs = await getJson(`${api}/schedules/orders-report-nightly/runs?limit=5`);
      return runs.find((r: { refcode?: string }) => r.refcode);
    },
    30_000,
    "the run's refcode",
  );
  const task = await getJson(`${api}/tasks/${record.refcode}?wait=30`);
  assert.is(task.status, "completed", JSON.stringify(task));
  assert.equal(task.result, { orders: ORDERS, processed: ORDERS });

  const done = await waitFor(
    async () => {
      const p = await getJson(`${api}/parallel-tasks/${parallel.refcode}`);
      return p.status === "completed" ? p : undefined;
    },
    120_000,
    "the primes run",
    250,
  );
  assert.equal(done.result, { count: 148933 });
}

test("every role as its own process on real Redis and Kafka; kills and additions mid-flight; SIGTERM → exit 0", async () => {
  const prefix = unique("e2e");
  const admin = testRuntime({ redis: true });
  onCleanup(() => deleteKeys(admin, `${prefix}:*`));
  deleteTopicsLater(["orders", "events", "orders.dlq", "events.dlq"].map((t) => `${prefix}.${t}`));
  const env = {
    REDIS_URL,
    KAFKA_BROKERS,
    KEY_PREFIX: prefix,
    TOPIC_PREFIX: `${prefix}.`,
    SHUTDOWN_TIMEOUT_MS: "15000",
    PARALLEL_MAX_WORKERS: "1",
  };
  const start = (role: string) => spawnProgram({ ...env, ROLE: role }, { timeoutMs: 60_000 });
  const procs: Program[] = [];
  const add = async (role: string) => {
    const p = await start(role);
    procs.push(p);
    return p;
  };
  const http = await add("http");
  for (
    const role of ["consumer", "bulk-consumer", "scheduler", "async-worker", "parallel-worker"]
  ) await add(role);
  await waitFor(
    async () => {
      for (const p of procs) {
        const r = await fetch(`${p.url}/readyz`);
        await r.body?.cancel();
        if (r.status !== 200) return false;
      }
      return true;
    },
    60_000,
    "every process ready",
    250,
  );

  await story(http.url, async () => {
    // kill -9 a consumer and a parallel worker; add replacements and a second of each worker.
    const consumer = procs.find((p) => p.logs.some((l) => l.includes('"roles":["consumer"]')))!;
    consumer.kill("SIGKILL");
    await consumer.exited;
    procs.splice(procs.indexOf(consumer), 1);
    await add("consumer");
    await add("async-worker");
    await add("parallel-worker");
  });

  const statuses = await Promise.all(procs.map((p) => p.stop()));
  assert.equal(statuses.map((s) => s.code), procs.map(() => 0));
});

test("the same story with ROLE=all in one embedded process", async () => {
  const p = await spawnProgram({ KEY_PREFIX: unique("e2e"), SHUTDOWN_TIMEOUT_MS: "10000" }, {
    timeoutMs: 60_000,
  });
  await story(p.url);
  assert.is((await p.stop()).code, 0);
});

test.run();
