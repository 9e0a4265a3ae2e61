/**
 * Async tasks spread over the masters of the 6-node test cluster (`scripts/redis-cluster.sh`):
 * on a task-only workload (enqueue and run a few thousand tasks, of one type and of two types)
 * the busiest master does at most 80 % of the Redis commands (INFO commandstats deltas of each
 * master; the shares are printed). The cluster is shared with other tests: their commands count
 * too, so the workload is large enough to dominate.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as v from "valibot";
import { createClient } from "redis";
import { System } from "../../src/system.ts";
import type { Runtime } from "../../src/runtime.ts";
import { defineTask, type TaskDefinition } from "../../src/tasks/define.ts";
import { taskClient } from "../../src/tasks/client.ts";
import { TaskWorker } from "../../src/tasks/worker.ts";
import { cleanup, clusterMasters, onCleanup, testRuntime, waitFor } from "../helpers.ts";

test.after(cleanup);

const CLUSTER_URL = Deno.env.get("TEST_REDIS_CLUSTER_URL") ?? "redis://127.0.0.1:7000";
const TASKS = 3000;

/** Total calls of every command but INFO, per master. */
async function commandCalls(masters: { host: string; port: number }[]): Promise<number[]> {
  return await Promise.all(masters.map(async ({ host, port }) => {
    const c = createClient({ socket: { host, port, reconnectStrategy: false } });
    c.on("error", () => {});
    await c.connect();
    try {
      const info = String(await c.sendCommand(["INFO", "commandstats"]));
      let n = 0;
      for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
        if (m[1] !== "info") n += Number(m[2]);
      }
      return n;
    } finally {
      await c.quit().catch(() => {});
    }
  }));
}

const noop = (name: string) =>
  defineTask({
    name,
    input: v.object({ i: v.number() }),
    concurrency: 50,
    attempts: 1,
    maxQueued: 100_000,
    handler: () => {},
  });

/** Runs `count` tasks of each type through one worker; returns each master's command share. */
async function shares(defs: TaskDefinition[], count: number): Promise<number[]> {
  const rt: Runtime = testRuntime({
    env: { REDIS_URL: CLUSTER_URL },
    system: new System().add(...defs),
  });
  const masters = await clusterMasters(rt);
  assert.is(masters.length, 3, JSON.stringify(masters));
  const client = taskClient(rt);
  const worker = new TaskWorker(rt);
  const before = await commandCalls(masters);
  await worker.start();
  onCleanup(() => worker.stop(Date.now() + 2000));
  const refs: string[] = [];
  for (let i = 0; i < count; i += 50) {
    const batch = await Promise.all(
      defs.flatMap((def) =>
        Array.from({ length: Math.min(50, count - i) }, (_, j) => client.enqueue(def, { i: i + j }))
      ),
    );
    refs.push(...batch.map((r) => r.refcode));
  }
  const completed = async () => {
    const metric = await rt.metrics.getSingleMetric("tasks_total")?.get();
    return metric?.values.filter((x) => x.labels.status === "completed")
      .reduce((a, x) => a + x.value, 0) ?? 0;
  };
  await waitFor(async () => await completed() >= refs.length, 120_000, "every task completed");
  const after = await commandCalls(masters);
  await worker.stop(Date.now() + 2000);
  const deltas = after.map((n, i) => n - before[i]);
  const total = deltas.reduce((a, b) => a + b, 0);
  const out = deltas.map((d) => d / total);
  console.log(
    `${defs.map((d) => d.name).join(" + ")}: ${refs.length} tasks, ${total} commands; shares ` +
      masters.map((m, i) => `${m.port} ${(out[i] * 100).toFixed(1)} %`).join(", "),
  );
  return out;
}

test("one type's tasks spread: the busiest master does at most 80 % of the commands", async () => {
  const s = await shares([noop("spread-one")], TASKS);
  assert.ok(Math.max(...s) <= 0.8, `shares ${s.map((x) => x.toFixed(3)).join(", ")}`);
  assert.ok(s.every((x) => x > 0), "every master does some of the work");
});

test("two types' tasks spread: the busiest master does at most 80 % of the commands", async () => {
  const s = await shares([noop("spread-a"), noop("spread-b")], TASKS / 2);
  assert.ok(Math.max(...s) <= 0.8, `shares ${s.map((x) => x.toFixed(3)).join(", ")}`);
  assert.ok(s.every((x) => x > 0), "every master does some of the work");
});

test.run();
