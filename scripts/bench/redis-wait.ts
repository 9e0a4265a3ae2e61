/**
 * @module What `REDIS_WAIT_REPLICAS` costs: task enqueues (each answered only once the replica
 * holds it when the wait is on) against a private primary with one replica, with the wait at 0
 * and at 1, in alternating rounds; enqueues/s and enqueue latency p50/p99.
 *
 * Usage: `deno task bench redis-wait [--tasks 5000] [--inflight 50] [--rounds 3]`
 */
import * as v from "valibot";
import { System } from "../../mod.ts";
import { loadConfig } from "../../src/config.ts";
import { createRuntime } from "../../src/runtime.ts";
import { defineTask } from "../../src/tasks/define.ts";
import { enqueueTask } from "../../src/tasks/client.ts";
import { cleanup, deleteKeys, freePort, redisServer, waitFor } from "../../test/helpers.ts";
import { arg, median, percentile, summaryRow } from "./_lib.ts";

const TASKS = Number(arg("tasks", "5000"));
const INFLIGHT = Number(arg("inflight", "50"));
const ROUNDS = Number(arg("rounds", "3"));

const primary = freePort();
await redisServer(primary);
const replica = freePort();
await redisServer(replica, ["--replicaof", "127.0.0.1", String(primary)]);
await waitFor(
  async () => {
    const out = await new Deno.Command("redis-cli", {
      args: ["-p", String(replica), "info", "replication"],
      stdout: "piped",
    }).output();
    return new TextDecoder().decode(out.stdout).includes("master_link_status:up");
  },
  20_000,
  "the replica to sync",
);

const noop = defineTask({ name: "noop", input: v.object({}), handler: () => {} });

interface Figures {
  perSecond: number;
  p50: number;
  p99: number;
}

async function measure(wait: number): Promise<Figures> {
  const prefix = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const rt = createRuntime(
    loadConfig({
      REDIS_URL: `redis://127.0.0.1:${primary}`,
      REDIS_WAIT_REPLICAS: String(wait),
      KEY_PREFIX: prefix,
      LOG_LEVEL: "warn",
    }),
    new System().add(noop),
  );
  await waitFor(async () => (await rt.store.check()).ok, 10_000, "store ready");
  for (let i = 0; i < 500; i++) await enqueueTask(rt, noop, {});
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: INFLIGHT }, async () => {
    while (next++ < TASKS) {
      const s = performance.now();
      await enqueueTask(rt, noop, {});
      latencies.push(performance.now() - s);
    }
  }));
  const perSecond = TASKS / ((performance.now() - t0) / 1000);
  latencies.sort((a, b) => a - b);
  await deleteKeys(rt, `${prefix}:*`);
  await rt.store.close();
  return { perSecond, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) };
}

console.log(
  `task enqueues against a primary with one replica (loopback): ${TASKS} per round, ${INFLIGHT} ` +
    `in flight, REDIS_WAIT_REPLICAS 0 and 1 alternating, ${ROUNDS} rounds`,
);
const runs: Record<number, Figures[]> = { 0: [], 1: [] };
for (let r = 0; r < ROUNDS; r++) {
  for (const wait of r % 2 === 0 ? [0, 1] : [1, 0]) {
    const f = await measure(wait);
    runs[wait].push(f);
    console.log(
      `  REDIS_WAIT_REPLICAS=${wait}: ${f.perSecond.toFixed(0)} enqueues/s, latency p50 ${
        f.p50.toFixed(2)
      } ms, p99 ${f.p99.toFixed(2)} ms`,
    );
  }
}
const pick = (wait: number, k: keyof Figures) => median(runs[wait].map((f) => f[k]));
console.log(
  `medians: wait 0 ${pick(0, "perSecond").toFixed(0)}/s p50 ${pick(0, "p50").toFixed(2)} ms p99 ${
    pick(0, "p99").toFixed(2)
  } ms; wait 1 ${pick(1, "perSecond").toFixed(0)}/s p50 ${pick(1, "p50").toFixed(2)} ms p99 ${
    pick(1, "p99").toFixed(2)
  } ms; throughput with the wait ${(pick(1, "perSecond") / pick(0, "perSecond")).toFixed(2)}×`,
);
summaryRow({
  bench: "redis-wait",
  what: "task enqueues/s, REDIS_WAIT_REPLICAS=1 vs 0",
  ours: pick(1, "perSecond"),
  baseline: pick(0, "perSecond"),
  baselineName: "no wait",
  better: "higher",
  unit: "enqueues/s",
});
await cleanup();
Deno.exit(0);
