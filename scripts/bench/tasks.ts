/**
 * @module Async-task benchmark: our task engine vs BullMQ on the same Redis, same concurrency,
 * no-op handler. Each round runs each contender in a fresh process (producer and worker in it,
 * warmed up alike), in alternating order; the medians of the rounds are compared. Measures the
 * enqueue rate, end-to-end tasks/s (enqueue and run together) and enqueue→start latency p50/p99
 * at a fixed 1000 tasks/s, then prints the ratios.
 *
 * Usage: `deno task bench tasks [--tasks 20000] [--concurrency 50] [--inflight 50]
 *   [--seconds 5] [--rate 1000] [--rounds 3] [--redis redis://127.0.0.1:6379]`
 */
import * as v from "valibot";
import { Queue, Worker as BullWorker } from "bullmq";
import { Redis as IORedis } from "ioredis";
import { System } from "../../mod.ts";
import { loadConfig } from "../../src/config.ts";
import { createRuntime, type Runtime } from "../../src/runtime.ts";
import { defineTask } from "../../src/tasks/define.ts";
import { enqueueTask } from "../../src/tasks/client.ts";
import { TaskWorker } from "../../src/tasks/worker.ts";
import { Recoverer } from "../../src/tasks/recoverer.ts";

const arg = (name: string, fallback: string) => {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : fallback;
};
const TASKS = Number(arg("tasks", "20000"));
const CONCURRENCY = Number(arg("concurrency", "50"));
const INFLIGHT = Number(arg("inflight", "50"));
const SECONDS = Number(arg("seconds", "5"));
const RATE = Number(arg("rate", "1000"));
const REDIS = arg("redis", "redis://127.0.0.1:6379");
const ROUNDS = Number(arg("rounds", "3"));
const WARMUP = Number(arg("warmup", "3000"));
const CHILD = arg("child", "");

/** What one system under test offers the benchmark. */
interface Contender {
  name: string;
  /** Enqueues one no-op task carrying its enqueue time. */
  enqueue(t: number): Promise<unknown>;
  /** Starts the worker; `onStart` runs at each handler start with the carried time. */
  startWorker(onStart: (t: number) => void): Promise<void>;
  /** Tasks whose completion is written so far. */
  completed(): Promise<number>;
  stopWorker(): Promise<void>;
  /** Deletes every key this contender wrote. */
  clean(): Promise<void>;
  close(): Promise<void>;
}

interface Figures {
  enqueuePerSecond: number;
  endToEndPerSecond: number;
  p50: number;
  p99: number;
  /** Tasks of the latency phase that started (all should). */
  started: number;
}

async function ensureRedis(): Promise<void> {
  if (REDIS !== "redis://127.0.0.1:6379") return;
  const root = new URL("../../", import.meta.url).pathname;
  const out = await new Deno.Command("bash", {
    args: [`${root}scripts/redis.sh`],
    stdout: "null",
    stderr: "inherit",
  }).output();
  if (out.code !== 0) throw new Error("scripts/redis.sh failed");
}

async function deleteKeys(rt: Runtime, pattern: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, found] = await rt.store.command(
      ["SCAN", cursor, "MATCH", pattern, "COUNT", 1000],
    ) as [string, string[]];
    cursor = String(next);
    if (found.length) await rt.store.command(["UNLINK", ...found]);
  } while (cursor !== "0");
}

function ours(): Contender {
  let onStart: (t: number) => void = () => {};
  const noop = defineTask({
    name: "noop",
    input: v.object({ t: v.number() }),
    concurrency: CONCURRENCY,
    attempts: 1,
    handler: ({ t }) => {
      onStart(t);
    },
  });
  const prefix = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const rt = createRuntime(
    loadConfig({ REDIS_URL: REDIS, KEY_PREFIX: prefix, LOG_LEVEL: "warn" }),
    new System().add(noop),
  );
  let worker: TaskWorker | undefined;
  let recoverer: Recoverer | undefined;
  return {
    name: "ours",
    enqueue: (t) => enqueueTask(rt, noop, { t }),
    async startWorker(callback) {
      onStart = callback;
      worker = new TaskWorker(rt, { concurrency: CONCURRENCY });
      recoverer = new Recoverer(rt);
      await worker.start();
      await recoverer.start();
    },
    async completed() {
      const metric = await rt.metrics.getSingleMetric("tasks_total")?.get();
      return metric?.values.find((x) => x.labels.status === "completed")?.value ?? 0;
    },
    async stopWorker() {
      await recoverer?.stop();
      await worker?.stop(Date.now() + 5000);
    },
    clean: () => deleteKeys(rt, `${prefix}:*`),
    close: () => rt.store.close(),
  };
}

function bullmq(): Contender {
  // BullMQ's own client, ioredis, as its users run it.
  const connect = () => new IORedis(REDIS, { maxRetriesPerRequest: null });
  const name = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const queue = new Queue(name, { connection: connect() });
  let worker: BullWorker | undefined;
  let completed = 0;
  return {
    name: "BullMQ",
    enqueue: (t) => queue.add("noop", { t }),
    async startWorker(onStart) {
      worker = new BullWorker(name, (job) => {
        onStart(job.data.t);
        return Promise.resolve();
      }, { connection: connect(), concurrency: CONCURRENCY });
      worker.on("completed", () => completed++);
      await worker.waitUntilReady();
    },
    completed: () => Promise.resolve(completed),
    async stopWorker() {
      await worker?.close();
    },
    clean: () => queue.obliterate({ force: true }),
    close: () => queue.close(),
  };
}

/** Runs `count` calls of `work` with at most `inflight` at once. */
async function flood(count: number, inflight: number, work: () => Promise<unknown>) {
  let next = 0;
  await Promise.all(Array.from({ length: inflight }, async () => {
    while (next++ < count) await work();
  }));
}

const percentile = (sorted: number[], p: number) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : NaN;

async function measure(c: Contender): Promise<Figures> {
  await c.clean();
  // Warm-up, the same for both: connections, script loading, JIT of both paths.
  await flood(WARMUP, INFLIGHT, () => c.enqueue(performance.now()));
  await c.clean();

  let t0 = performance.now();
  await flood(TASKS, INFLIGHT, () => c.enqueue(performance.now()));
  const enqueuePerSecond = TASKS / ((performance.now() - t0) / 1000);
  await c.clean();

  const latencies: number[] = [];
  let measuring = false;
  await c.startWorker((t) => measuring && latencies.push(performance.now() - t));
  await flood(WARMUP, INFLIGHT, () => c.enqueue(performance.now()));
  while (await c.completed() < WARMUP) await new Promise((r) => setTimeout(r, 2));
  t0 = performance.now();
  await flood(TASKS, INFLIGHT, () => c.enqueue(performance.now()));
  while (await c.completed() < WARMUP + TASKS) await new Promise((r) => setTimeout(r, 2));
  const endToEndPerSecond = TASKS / ((performance.now() - t0) / 1000);

  await new Promise((r) => setTimeout(r, 500));
  measuring = true;
  const total = RATE * SECONDS;
  let sent = 0;
  const start = performance.now();
  const pending: Promise<unknown>[] = [];
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * RATE));
    while (sent < due) {
      pending.push(c.enqueue(performance.now()));
      sent++;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(pending);
  const wait = performance.now() + 5000;
  while (latencies.length < total && performance.now() < wait) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const sorted = [...latencies].sort((a, b) => a - b);
  await c.stopWorker();
  await c.clean();
  await c.close();
  return {
    enqueuePerSecond,
    endToEndPerSecond,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    started: sorted.length,
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const show = (name: string, f: Figures) =>
  console.log(
    `${name.padEnd(7)} enqueue ${f.enqueuePerSecond.toFixed(0).padStart(6)}/s  ` +
      `end-to-end ${f.endToEndPerSecond.toFixed(0).padStart(6)}/s  ` +
      `latency p50 ${f.p50.toFixed(2)} ms  p99 ${f.p99.toFixed(2)} ms  ` +
      `(${f.started}/${RATE * SECONDS} started)`,
  );

if (CHILD) {
  const figures = await measure(CHILD === "ours" ? ours() : bullmq());
  console.log(`RESULT ${JSON.stringify(figures)}`);
  Deno.exit(0);
}

async function round(name: "ours" | "bullmq"): Promise<Figures> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, ...Deno.args, "--child", name],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const line = new TextDecoder().decode(out.stdout).split("\n").find((l) =>
    l.startsWith("RESULT ")
  );
  if (!line) throw new Error(`The ${name} run printed no result (exit ${out.code})`);
  return JSON.parse(line.slice("RESULT ".length));
}

await ensureRedis();
console.log(
  `tasks benchmark: ${TASKS} tasks, concurrency ${CONCURRENCY}, ${INFLIGHT} enqueues in flight, ` +
    `latency at ${RATE}/s for ${SECONDS}s, ${ROUNDS} rounds (a fresh process each, order ` +
    `alternating), Redis ${REDIS}`,
);
const runs: Record<string, Figures[]> = { ours: [], BullMQ: [] };
for (let r = 0; r < ROUNDS; r++) {
  const order: ("ours" | "bullmq")[] = r % 2 === 0 ? ["ours", "bullmq"] : ["bullmq", "ours"];
  for (const name of order) {
    const figures = await round(name);
    const label = name === "ours" ? "ours" : "BullMQ";
    runs[label].push(figures);
    show(label, figures);
  }
}
const summary = (name: string): Figures => {
  const all = runs[name];
  const pick = (k: keyof Figures) => median(all.map((f) => f[k]));
  return {
    enqueuePerSecond: pick("enqueuePerSecond"),
    endToEndPerSecond: pick("endToEndPerSecond"),
    p50: pick("p50"),
    p99: pick("p99"),
    started: pick("started"),
  };
};
const a = summary("ours"), b = summary("BullMQ");
console.log(`\nmedians of ${ROUNDS} rounds:`);
show("ours", a);
show("BullMQ", b);
console.log(
  `ratios (ours / BullMQ): enqueue ${(a.enqueuePerSecond / b.enqueuePerSecond).toFixed(2)}×, ` +
    `end-to-end ${(a.endToEndPerSecond / b.endToEndPerSecond).toFixed(2)}×, ` +
    `p50 ${(a.p50 / b.p50).toFixed(2)}×, p99 ${
      (a.p99 / b.p99).toFixed(2)
    }× (latency: lower is better)`,
);
Deno.exit(0);
