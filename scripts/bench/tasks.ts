/**
 * @module Async-task benchmark, ours vs BullMQ on one Redis (a private `redis-server` of the
 * benchmark's own unless `--redis` is given), in two parts:
 *
 * 1. **The shipped system**: the example system's worker (`ROLE=async-worker`, all its task
 *    types) in its own process, fed in process or over HTTP (`ROLE=http`, another process),
 *    beside a BullMQ Worker process with the same concurrency fed by `queue.add` in process or by
 *    a bare `Deno.serve` endpoint (see `_tasks-system.ts`).
 * 2. **One task type in one process**: producer and worker in one process per contender, a no-op
 *    handler, `--concurrency` for both.
 *
 * Each contender runs in a fresh process per round, in alternating order; medians of the rounds.
 * Prints tasks/s, start delay p50/p99 under a backlog and at a fixed rate, Redis commands per
 * task, and ratios; `SUMMARY` lines feed `deno task bench all`.
 *
 * Usage: `deno task bench tasks [--part system|single|cluster|both] [--tasks 20000]
 *   [--modes process,http] [--system-tasks 6000] [--flood-seconds 3] [--connections 32] [--concurrency 50]
 *   [--inflight 50] [--seconds 5] [--rate 1000] [--rounds 3] [--system-rounds 1]
 *   [--redis URL] [--cluster URL] [--embedded]`
 *
 * 3. **Cluster**: part 2's workload on ours, on the single server and on a private 3-master
 *    Redis Cluster (`--cluster URL` names one instead), same run, with the ratio
 *    (`--part cluster` alone).
 * (`--embedded`: only part 2, ours alone on the embedded in-process store: no Redis, no BullMQ.)
 */
import * as v from "valibot";
import { Queue, Worker as BullWorker } from "bullmq";
import { Redis as IORedis } from "ioredis";
import { System } from "../../mod.ts";
import { loadConfig } from "../../src/config.ts";
import { createRuntime } from "../../src/runtime.ts";
import { defineTask } from "../../src/tasks/define.ts";
import { enqueueTask } from "../../src/tasks/client.ts";
import { TaskWorker } from "../../src/tasks/worker.ts";
import { sleepTask } from "../../src/example/tasks.ts";
import { Recoverer } from "../../src/tasks/recoverer.ts";
import { cleanup, deleteKeys } from "../../test/helpers.ts";
import { arg, median, percentile, privateCluster, privateRedis, summaryRow } from "./_lib.ts";
import { flood } from "./_tasks-system.ts";
import {
  measureSystem,
  type Mode,
  type SystemFigures,
  type SystemOptions,
} from "./_tasks-system.ts";

const TASKS = Number(arg("tasks", "20000"));
const CONCURRENCY = Number(arg("concurrency", "50"));
const INFLIGHT = Number(arg("inflight", "50"));
const SECONDS = Number(arg("seconds", "5"));
const RATE = Number(arg("rate", "1000"));
let REDIS = arg("redis", "");
const ROUNDS = Number(arg("rounds", "3"));
const WARMUP = Number(arg("warmup", "3000"));
const CHILD = arg("child", "");
const PART = arg("part", "both");
const EMBEDDED = Deno.args.includes("--embedded");
const SYSTEM: SystemOptions = {
  redis: "",
  mode: "process",
  tasks: Number(arg("system-tasks", "6000")),
  floodSeconds: Number(arg("flood-seconds", "3")),
  connections: Number(arg("connections", "32")),
  rate: RATE,
  rateSeconds: Number(arg("rate-seconds", "3")),
  warmup: Number(arg("system-warmup", "1000")),
};
const SYSTEM_ROUNDS = Number(arg("system-rounds", "1"));

/** What one system under test offers the benchmark. */
interface Contender {
  name: string;
  /** Enqueues one no-op task carrying its enqueue time. */
  enqueue(t: number): Promise<unknown>;
  /** Starts the worker; `onStart` runs at each handler start with the carried time. */
  startWorker(onStart: (t: number) => void): Promise<void>;
  /** Tasks whose completion is written so far. */
  completed(): Promise<number>;
  /** What a stuck drain reports beside the count (ours: its tasks by status). */
  state?(): Promise<string>;
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

function ours(): Contender {
  let onStart: (t: number) => void = () => {};
  const noop = defineTask({
    name: "noop",
    input: v.object({ t: v.number() }),
    concurrency: CONCURRENCY,
    maxQueued: 1_000_000,
    attempts: 1,
    handler: ({ t }) => {
      onStart(t);
    },
  });
  const prefix = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const rt = createRuntime(
    loadConfig({
      ...(EMBEDDED ? {} : { REDIS_URL: REDIS }),
      KEY_PREFIX: prefix,
      LOG_LEVEL: "warn",
    }),
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
    async state() {
      const metric = await rt.metrics.getSingleMetric("tasks_total")?.get();
      return JSON.stringify(metric?.values.map((x) => [x.labels.status, x.value]));
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

/** How long a drain may take before the run stops and says how far it got. */
const DRAIN_LIMIT_MS = 120_000;

/** Waits until `count` tasks are completed, or fails after {@link DRAIN_LIMIT_MS} with the count. */
async function drained(c: Contender, count: number): Promise<void> {
  const limit = performance.now() + DRAIN_LIMIT_MS;
  let done = 0;
  while ((done = await c.completed()) < count) {
    if (performance.now() > limit) {
      const state = (await c.state?.()) ?? "";
      throw new Error(
        `${c.name}: ${done} of ${count} tasks completed after ${DRAIN_LIMIT_MS} ms ${state}`,
      );
    }
    await new Promise((r) => setTimeout(r, 2));
  }
}

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
  await drained(c, WARMUP);
  t0 = performance.now();
  await flood(TASKS, INFLIGHT, () => c.enqueue(performance.now()));
  await drained(c, WARMUP + TASKS);
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

const sleepConcurrency = () => sleepTask.concurrency;
const show = (name: string, f: Figures) =>
  console.log(
    `${name.padEnd(7)} enqueue ${f.enqueuePerSecond.toFixed(0).padStart(6)}/s  ` +
      `end-to-end ${f.endToEndPerSecond.toFixed(0).padStart(6)}/s  ` +
      `latency p50 ${f.p50.toFixed(2)} ms  p99 ${f.p99.toFixed(2)} ms  ` +
      `(${f.started}/${RATE * SECONDS} started)`,
  );

if (CHILD) {
  REDIS = arg("child-redis", "");
  const [part, name, mode] = CHILD.split(":");
  const figures = part === "system"
    ? await measureSystem(name as "ours" | "bullmq", {
      ...SYSTEM,
      redis: REDIS,
      mode: mode as Mode,
    })
    : await measure(name === "ours" ? ours() : bullmq());
  console.log(`RESULT ${JSON.stringify(figures)}`);
  Deno.exit(0);
}

async function child<T>(name: string, redis = REDIS): Promise<T> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      ...Deno.args,
      "--child",
      name,
      "--child-redis",
      redis,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const line = new TextDecoder().decode(out.stdout).split("\n").find((l) =>
    l.startsWith("RESULT ")
  );
  if (!line) throw new Error(`The ${name} run printed no result (exit ${out.code})`);
  return JSON.parse(line.slice("RESULT ".length));
}

if (EMBEDDED) {
  console.log(
    `one task type in one process, embedded store, ours alone: ${TASKS} tasks, concurrency ` +
      `${CONCURRENCY}, ${INFLIGHT} enqueues in flight, latency at ${RATE}/s for ${SECONDS}s, ` +
      `${ROUNDS} rounds (a fresh process each)`,
  );
  const runs: Figures[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    runs.push(await child<Figures>("single:ours"));
    show("ours", runs[r]);
  }
  const pick = (k: keyof Figures) => median(runs.map((f) => f[k]));
  console.log(`medians of ${ROUNDS} rounds:`);
  show("ours", {
    enqueuePerSecond: pick("enqueuePerSecond"),
    endToEndPerSecond: pick("endToEndPerSecond"),
    p50: pick("p50"),
    p99: pick("p99"),
    started: pick("started"),
  });
  Deno.exit(0);
}
REDIS ||= await privateRedis();
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;

/**
 * The two summary rows of a comparison with BullMQ: tasks/s end to end (target 1.5×) and the
 * start delay p99 at a steady rate (target 1×).
 *
 * @param throughput the row's name, ours, BullMQ's
 * @param startP99 the row's name, ours, BullMQ's (ms)
 */
function _vsBullmq(
  [throughputWhat, ours, bullmq]: [string, number, number],
  [p99What, oursP99, bullmqP99]: [string, number, number],
): void {
  summaryRow({
    bench: "tasks",
    what: throughputWhat,
    ours,
    baseline: bullmq,
    baselineName: "BullMQ",
    better: "higher",
    target: 1.5,
    unit: "tasks/s",
  });
  summaryRow({
    bench: "tasks",
    what: p99What,
    ours: oursP99,
    baseline: bullmqP99,
    baselineName: "BullMQ",
    better: "lower",
    target: 1,
    unit: "ms",
  });
}

if (PART === "system" || PART === "both") {
  console.log(
    `shipped system: the example worker (ROLE=async-worker: sleep ×${sleepConcurrency()}, ` +
      `orders-report) vs a BullMQ Worker process (concurrency ${sleepConcurrency()}); ` +
      `sleep {"ms":0}; flood: ${SYSTEM.tasks} tasks in process / ${SYSTEM.floodSeconds}s of wrk ` +
      `over HTTP, ${SYSTEM.connections} clients; rate phase ${SYSTEM.rate}/s for ` +
      `${SYSTEM.rateSeconds}s; ${SYSTEM_ROUNDS} round(s); Redis ${REDIS}`,
  );
  const show = (label: string, f: SystemFigures) =>
    console.log(
      `  ${label.padEnd(22)} enqueue ${f.enqueuePerSecond.toFixed(0).padStart(6)}/s  end-to-end ${
        f.endToEndPerSecond.toFixed(0).padStart(6)
      } tasks/s (${f.tasks})  start delay backlog p50/p99 ${f.backlogP50.toFixed(0)}/${
        f.backlogP99.toFixed(0)
      } ms, at ${SYSTEM.rate}/s ${f.rateP50.toFixed(1)}/${f.rateP99.toFixed(1)} ms  Redis ${
        f.commandsPerTask.toFixed(1)
      } commands/task (${f.scriptsPerTask.toFixed(2)} scripts)${
        f.refused ? `; ${f.refused} POSTs not answered 202` : ""
      }`,
    );
  for (const mode of arg("modes", "process,http").split(",") as Mode[]) {
    const runs: Record<string, SystemFigures[]> = { ours: [], bullmq: [] };
    for (let r = 0; r < SYSTEM_ROUNDS; r++) {
      for (const name of r % 2 === 0 ? ["ours", "bullmq"] : ["bullmq", "ours"]) {
        const f = await child<SystemFigures>(`system:${name}:${mode}`);
        runs[name].push(f);
        show(
          `${name === "ours" ? "ours" : "BullMQ"}, ${mode === "http" ? "HTTP" : "in process"}`,
          f,
        );
      }
    }
    const pick = (name: string, k: keyof SystemFigures) =>
      median(runs[name].map((f) => f[k] as number));
    const label = mode === "http" ? "enqueue over HTTP" : "enqueue in process";
    const o = (k: keyof SystemFigures) => pick("ours", k),
      b = (k: keyof SystemFigures) => pick("bullmq", k);
    console.log(
      `  ${label}: end-to-end ${ratio(o("endToEndPerSecond"), b("endToEndPerSecond"))}, enqueue ${
        ratio(o("enqueuePerSecond"), b("enqueuePerSecond"))
      }, start delay p99 under backlog ${
        ratio(o("backlogP99"), b("backlogP99"))
      }, at ${SYSTEM.rate}/s p99 ${
        ratio(o("rateP99"), b("rateP99"))
      } (lower is better), Redis commands/task ${
        ratio(o("commandsPerTask"), b("commandsPerTask"))
      }`,
    );
    if (mode === "process") {
      for (const name of ["ours", "bullmq"]) {
        const f = runs[name][0];
        console.log(
          `  Redis commands per task, ${name === "ours" ? "ours" : "BullMQ"}: ${
            f.commands.map(([c, n]) => `${c} ${n.toFixed(2)}`).join(", ")
          }`,
        );
      }
    }
    const what = `shipped worker, ${label}`;
    _vsBullmq(
      [`${what}: tasks/s end to end`, o("endToEndPerSecond"), b("endToEndPerSecond")],
      [`${what}: start delay p99 at ${SYSTEM.rate}/s`, o("rateP99"), b("rateP99")],
    );
    summaryRow({
      bench: "tasks",
      what: `${what}: start delay p99 under a backlog`,
      ours: o("backlogP99"),
      baseline: b("backlogP99"),
      baselineName: "BullMQ",
      better: "lower",
      unit: "ms",
    });
    if (mode === "process") {
      summaryRow({
        bench: "tasks",
        what: "Redis commands per task (commandstats)",
        ours: o("commandsPerTask"),
        baseline: b("commandsPerTask"),
        baselineName: "BullMQ",
        better: "lower",
        unit: "commands",
      });
    }
  }
}

if (PART === "single" || PART === "both") {
  console.log(
    `\none task type in one process: ${TASKS} tasks, concurrency ${CONCURRENCY}, ${INFLIGHT} ` +
      `enqueues in flight, latency at ${RATE}/s for ${SECONDS}s, ${ROUNDS} rounds (a fresh ` +
      `process each, order alternating), Redis ${REDIS}`,
  );
  const runs: Record<string, Figures[]> = { ours: [], BullMQ: [] };
  for (let r = 0; r < ROUNDS; r++) {
    const order: ("ours" | "bullmq")[] = r % 2 === 0 ? ["ours", "bullmq"] : ["bullmq", "ours"];
    for (const name of order) {
      const figures = await child<Figures>(`single:${name}`);
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
  console.log(`medians of ${ROUNDS} rounds:`);
  show("ours", a);
  show("BullMQ", b);
  console.log(
    `ratios (ours / BullMQ): enqueue ${ratio(a.enqueuePerSecond, b.enqueuePerSecond)}, ` +
      `end-to-end ${ratio(a.endToEndPerSecond, b.endToEndPerSecond)}, ` +
      `p50 ${ratio(a.p50, b.p50)}, p99 ${ratio(a.p99, b.p99)} (latency: lower is better)`,
  );
  _vsBullmq(
    ["one type in one process: tasks/s end to end", a.endToEndPerSecond, b.endToEndPerSecond],
    [`one type in one process: enqueue→start p99 at ${RATE}/s`, a.p99, b.p99],
  );
}
if (PART === "cluster" || PART === "both") {
  const cluster = arg("cluster", "") || await privateCluster();
  console.log(
    `\nours on one server vs a 3-master Redis Cluster (no replicas): the one-type workload ` +
      `of part 2, ${ROUNDS} rounds alternating; server ${REDIS}, cluster ${cluster}`,
  );
  const runs: Record<string, Figures[]> = { server: [], cluster: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const where of r % 2 === 0 ? ["server", "cluster"] : ["cluster", "server"]) {
      const figures = await child<Figures>("single:ours", where === "server" ? REDIS : cluster);
      runs[where].push(figures);
      show(where, figures);
    }
  }
  const pick = (where: string, k: keyof Figures) => median(runs[where].map((f) => f[k]));
  console.log(
    `medians: end-to-end ${pick("server", "endToEndPerSecond").toFixed(0)}/s on one server, ${
      pick("cluster", "endToEndPerSecond").toFixed(0)
    }/s on the cluster; cluster / server: end-to-end ${
      ratio(pick("cluster", "endToEndPerSecond"), pick("server", "endToEndPerSecond"))
    }, enqueue ${
      ratio(pick("cluster", "enqueuePerSecond"), pick("server", "enqueuePerSecond"))
    }, ` +
      `p99 ${ratio(pick("cluster", "p99"), pick("server", "p99"))} (lower is better)`,
  );
  summaryRow({
    bench: "tasks",
    what: "one type: tasks/s end to end, 3-master cluster vs one server",
    ours: pick("cluster", "endToEndPerSecond"),
    baseline: pick("server", "endToEndPerSecond"),
    baselineName: "one server",
    better: "higher",
    unit: "tasks/s",
  });
}
await cleanup();
Deno.exit(0);
