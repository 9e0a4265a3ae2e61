/**
 * Roles `consumer` and `bulk-consumer` as separate processes (`deno task start`) on Kafka
 * and Redis, through kill -9, SIGTERM and a broker restart: nothing lost, every effect once.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  cleanup,
  deleteTopicsLater,
  KAFKA_BROKERS,
  onCleanup,
  type Program,
  REDIS_URL,
  ROOT,
  spawnProgram,
  testRuntime,
  unique,
  waitFor,
} from "../helpers.ts";
import {
  eventsLogKey,
  eventsStatsKey,
  orderKey,
  ordersProcessedKey,
} from "../../src/example/keys.ts";
import { toHash } from "../../src/infra/store.ts";

test.after(cleanup);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A deployment: its prefixes, a producer runtime on the same Kafka/Redis, and its checks. */
function deployment(brokers = KAFKA_BROKERS) {
  const prefix = unique("t");
  const topicPrefix = `${prefix}.`;
  const env = {
    KAFKA_BROKERS: brokers,
    REDIS_URL,
    KEY_PREFIX: prefix,
    TOPIC_PREFIX: topicPrefix,
    SHUTDOWN_TIMEOUT_MS: "15000",
  };
  const rt = testRuntime({ env });
  if (brokers === KAFKA_BROKERS) {
    deleteTopicsLater(["orders", "orders.dlq", "events", "events.dlq"].map((t) => topicPrefix + t));
  }
  let orders = 0, events = 0;
  const ids: string[] = [];
  return {
    rt,
    env,
    /** Writes orders like `POST /orders` does, and publishes them. */
    async orders(n: number) {
      const batch = Array.from({ length: n }, () => crypto.randomUUID());
      await rt.store.pipeline(batch.map((id) => [
        "HSET",
        orderKey(prefix, id),
        "id",
        id,
        "item",
        "lamp",
        "qty",
        1,
        "processed",
        "0",
      ]));
      await rt.bus.publish(
        "orders",
        batch.map((id) => ({ key: id, value: JSON.stringify({ id, item: "lamp", qty: 1 }) })),
      );
      ids.push(...batch);
      orders += n;
    },
    /** Publishes events like `POST /events` does. */
    async events(n: number) {
      const at = new Date().toISOString();
      await rt.bus.publish(
        "events",
        Array.from({ length: n }, (_, i) => ({
          key: crypto.randomUUID(),
          value: JSON.stringify({ type: "t", at, data: { i } }),
        })),
      );
      events += n;
    },
    async progress() {
      const processed = Number(await rt.store.command(["SCARD", ordersProcessedKey(prefix)]));
      const stats = toHash(await rt.store.command(["HGETALL", eventsStatsKey(prefix)]));
      return { processed, stored: Number(stats.stored ?? 0) };
    },
    /** Waits until everything published is handled, then checks every count is exact. */
    async exact(timeoutMs = 120_000) {
      await waitFor(
        async () => {
          const p = await this.progress();
          return p.processed >= orders && p.stored >= events;
        },
        timeoutMs,
        `${orders} orders and ${events} events handled`,
        250,
      );
      await sleep(1000); // Real processes: a duplicate would land within this window.
      const p = await this.progress();
      assert.is(p.processed, orders, "orders processed");
      assert.is(p.stored, events, "events stored");
      const times = await rt.store.pipeline(
        ids.map((id) => ["HGET", orderKey(prefix, id), "times_processed"]),
      );
      assert.ok(times.every((t) => t === "1"), "every order's effect applied once");
      const log = await rt.store.command(["LRANGE", eventsLogKey(prefix), 0, -1]) as string[];
      assert.is(log.length, events, "events in the log");
      assert.is(new Set(log.map((e) => JSON.parse(e).id)).size, events, "no event stored twice");
    },
  };
}

async function spawnConsumers(env: Record<string, string>): Promise<Program> {
  const p = await spawnProgram({ ROLE: "consumer,bulk-consumer", ...env });
  await waitFor(async () => (await readyz(p)).status === 200, 60_000, "consumers ready");
  return p;
}

async function readyz(p: Program): Promise<{ status: number; body: any }> {
  try {
    const res = await fetch(`${p.url}/readyz`);
    return { status: res.status, body: await res.json() };
  } catch {
    return { status: 0, body: null };
  }
}

/** Produces in the background until stopped, so kills land mid-stream. */
function produce(d: ReturnType<typeof deployment>, rounds: number) {
  let stop = false;
  const done = (async () => {
    for (let i = 0; i < rounds && !stop; i++) {
      await d.orders(50);
      await d.events(1000);
      await sleep(50); // The load's pace: rounds of traffic while the broker fails.
    }
  })();
  return { done, stop: () => (stop = true) };
}

test("kill -9 a consumer mid-stream with a second one in its groups: nothing lost, counts exact", async () => {
  const d = deployment();
  const a = await spawnConsumers(d.env);
  const b = await spawnConsumers(d.env);
  const producer = produce(d, 40);
  await waitFor(async () => (await d.progress()).stored >= 8000, 60_000, "8000 events stored");
  a.kill("SIGKILL");
  await a.exited;
  await producer.done;
  await d.exact();
  assert.is((await readyz(b)).status, 200);
  assert.is((await b.stop()).code, 0);
});

test("SIGTERM mid-stream exits 0 after committing the batch in hand; a restart stores the rest exactly once", async () => {
  const d = deployment();
  const a = await spawnConsumers(d.env);
  const producer = produce(d, 40);
  await waitFor(async () => (await d.progress()).stored >= 8000, 60_000, "8000 events stored");
  const t0 = Date.now();
  a.kill("SIGTERM");
  const status = await a.exited;
  assert.is(status.code, 0);
  assert.ok(Date.now() - t0 < 15_000, "within SHUTDOWN_TIMEOUT_MS");
  assert.ok(a.logs.some((l) => l.includes('"consumer stopped"')), "consumers stopped cleanly");
  assert.not.ok(a.logs.some((l) => l.includes("did not finish")), "nothing cut off");
  await producer.done;
  const b = await spawnConsumers(d.env);
  await d.exact();
  assert.is((await b.stop()).code, 0);
});

/** A broker of this test's own (not the shared one), started by scripts/kafka.sh. */
async function ownBroker(port: number) {
  const env = { KAFKA_PORT: String(port), KAFKA_CONTROLLER_PORT: String(port + 1) };
  const out = await new Deno.Command("bash", {
    args: [`${ROOT}scripts/kafka.sh`],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) throw new Error(`kafka.sh failed: ${new TextDecoder().decode(out.stderr)}`);
  const cache = Deno.env.get("KAFKA_HOME_CACHE") ?? `${Deno.env.get("HOME")}/.cache/svc-kafka`;
  let pid = Number((await Deno.readTextFile(`${cache}/run-${port}/kafka.pid`)).trim());
  const command = (await Deno.readTextFile(`/proc/${pid}/cmdline`)).split("\0").filter((a) => a);
  let child: Deno.ChildProcess | undefined;
  const alive = (p: number) => {
    try {
      Deno.kill(p, "SIGCONT");
      return true;
    } catch {
      return false;
    }
  };
  const stop = async () => {
    if (child) {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      const timer = setTimeout(() => {
        try {
          child!.kill("SIGKILL");
        } catch { /* gone */ }
      }, 30_000);
      await child.status;
      clearTimeout(timer);
      child = undefined;
    } else if (alive(pid)) {
      Deno.kill(pid, "SIGTERM");
      await waitFor(() => !alive(pid), 40_000, "the broker to stop", 200);
    }
  };
  onCleanup(stop);
  return {
    brokers: `127.0.0.1:${port}`,
    stop,
    /** Starts it again on the same data directory. */
    start() {
      child = new Deno.Command(command[0], {
        args: command.slice(1),
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      pid = child.pid;
    },
  };
}

test("the broker stopped and restarted mid-stream: consumers recover by themselves, nothing lost", async () => {
  const broker = await ownBroker(Number(Deno.env.get("TEST_KAFKA_RESTART_PORT") ?? 9192));
  const d = deployment(broker.brokers);
  const a = await spawnConsumers(d.env);
  for (let i = 0; i < 10; i++) {
    await d.orders(100);
    await d.events(1000);
  }
  await waitFor(async () => (await d.progress()).stored >= 2000, 60_000, "2000 events stored");
  await broker.stop();
  const down = await waitFor(
    async () => {
      const r = await readyz(a);
      return r.status === 503 ? r.body : undefined;
    },
    30_000,
    "readyz 503 while the broker is down",
  );
  assert.is(down.checks.kafka.status, "failing");
  await sleep(3000); // A real broker stays down a while before it comes back.
  broker.start();
  await waitFor(async () => (await d.rt.bus.check()).ok, 60_000, "the broker back", 500);
  for (let i = 0; i < 10; i++) {
    await waitFor(
      async () => {
        try {
          await d.orders(100);
          await d.events(1000);
          return true;
        } catch {
          return false;
        }
      },
      60_000,
      "publishing again",
      500,
    );
  }
  await d.exact(180_000);
  await waitFor(async () => (await readyz(a)).status === 200, 60_000, "consumers ready again");
  assert.is((await a.stop()).code, 0);
});

test.run();
