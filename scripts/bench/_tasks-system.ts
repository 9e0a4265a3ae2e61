/**
 * @module The tasks benchmark's shipped-system scenarios: the example system's worker
 * (`ROLE=async-worker`, every task type of it) in its own process, fed in process or over HTTP
 * (`ROLE=http` in another process), beside BullMQ's Worker in its own process with the same
 * concurrency (the `sleep` type's), fed by `queue.add` in process or by a bare `Deno.serve`
 * endpoint in another process. All on one Redis, no-op `sleep {"ms":0}` tasks.
 *
 * Per contender and mode: the enqueue rate and end-to-end tasks/s of a flood (the worker drains
 * a backlog), the start delay (ready → started, from the stored records) p50/p99 under that
 * backlog and at a fixed rate, and Redis commands per task (INFO commandstats deltas over the
 * flood).
 */
import { Queue } from "bullmq";
import { Redis as IORedis } from "ioredis";
import { loadConfig } from "../../src/config.ts";
import { createRuntime, type Runtime } from "../../src/runtime.ts";
import { enqueueTask } from "../../src/tasks/client.ts";
import { exampleSystem } from "../../src/example/mod.ts";
import { sleepTask } from "../../src/example/tasks.ts";
import { waitFor } from "../../test/helpers.ts";
import {
  commandCalls,
  deleteMatching,
  percentile,
  serve,
  type Server,
  wrk,
  wrkScript,
} from "./_lib.ts";

/** How the tasks reach the queue. */
export type Mode = "process" | "http";

/** The figures of one contender in one mode. */
export interface SystemFigures {
  enqueuePerSecond: number;
  endToEndPerSecond: number;
  tasks: number;
  /** Start delay under the flood's backlog, ms. */
  backlogP50: number;
  backlogP99: number;
  /** Start delay at the fixed rate, ms. */
  rateP50: number;
  rateP99: number;
  rateStarted: number;
  /** Redis commands per task (scripts' own commands included), and scripts run per task. */
  commandsPerTask: number;
  scriptsPerTask: number;
  /** The commands per task, most frequent first. */
  commands: [string, number][];
  /** POSTs of the fixed-rate phase not answered 202. */
  refused: number;
}

/** Options of a run. */
export interface SystemOptions {
  redis: string;
  mode: Mode;
  /** Flood: tasks enqueued in process, or seconds of wrk for HTTP. */
  tasks: number;
  floodSeconds: number;
  connections: number;
  rate: number;
  rateSeconds: number;
  warmup: number;
}

interface Contender {
  name: string;
  /** Starts its processes. */
  start(): Promise<void>;
  /** Enqueues one `sleep {"ms":0}` from this process. */
  enqueue(): Promise<unknown>;
  /** The URL that takes `POST /tasks/sleep`. */
  postUrl(): string;
  completed(): Promise<number>;
  /** Start delays (ms) of the tasks created in [from, to] (epoch ms). */
  delays(from: number, to: number): Promise<number[]>;
  stop(): Promise<void>;
}

const SCRIPTS = new Set(["eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"]);
const IGNORED = new Set(["info"]);

async function hmgetAll(
  admin: Runtime,
  keys: string[],
  fields: string[],
): Promise<(string | null)[][]> {
  const out: (string | null)[][] = [];
  for (let i = 0; i < keys.length; i += 1000) {
    const replies = await admin.store.pipeline(
      keys.slice(i, i + 1000).map((k) => ["HMGET", k, ...fields]),
    );
    out.push(...(replies as (string | null)[][]));
  }
  return out;
}

async function scanKeys(admin: Runtime, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, found] = await admin.store.command(
      ["SCAN", cursor, "MATCH", pattern, "COUNT", 1000],
    ) as [string, string[]];
    cursor = String(next);
    keys.push(...found);
  } while (cursor !== "0");
  return keys;
}

function ours(opts: SystemOptions, admin: Runtime): Contender {
  const prefix = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const env = { REDIS_URL: opts.redis, KEY_PREFIX: prefix, LOG_LEVEL: "info" };
  const rt = createRuntime(
    loadConfig({ ...env, LOG_LEVEL: "warn" }),
    exampleSystem(),
  );
  let worker: Server | undefined, http: Server | undefined;
  return {
    name: "ours",
    async start() {
      worker = await serve(["deno", "run", "-A", "src/example/main.ts"], {
        ...env,
        ROLE: "async-worker",
      });
      if (opts.mode === "http") {
        http = await serve(["deno", "run", "-A", "src/example/main.ts"], { ...env, ROLE: "http" });
      }
    },
    enqueue: () => enqueueTask(rt, sleepTask, { ms: 0 }),
    postUrl: () => `${http!.url}/tasks/sleep`,
    async completed() {
      const text = await (await fetch(`${worker!.url}/metrics`)).text();
      let n = 0;
      for (const m of text.matchAll(/^tasks_total\{([^}]*)\} (\d+)/gm)) {
        if (m[1].includes('status="completed"')) n += Number(m[2]);
      }
      return n;
    },
    async delays(from, to) {
      const keys = await scanKeys(admin, `${prefix}:{${prefix}:tasks:*}:t:*`);
      const rows = await hmgetAll(admin, keys, ["created_at", "ready_at", "started_at"]);
      return rows
        .filter(([created]) => Number(created) >= from && Number(created) <= to)
        .map(([, ready, started]) => Number(started) - Number(ready))
        .filter(Number.isFinite);
    },
    async stop() {
      await http?.stop();
      await worker?.stop();
      await deleteMatching((args) => admin.store.command(args), `${prefix}:*`);
      await rt.store.close();
    },
  };
}

function bullmq(opts: SystemOptions, admin: Runtime): Contender {
  const queueName = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const env = { REDIS_URL: opts.redis, QUEUE: queueName };
  const queue = new Queue(queueName, {
    connection: new IORedis(opts.redis, { maxRetriesPerRequest: null }),
  });
  let worker: Server | undefined, http: Server | undefined;
  return {
    name: "BullMQ",
    async start() {
      worker = await serve(
        ["deno", "run", "-A", "scripts/bench/_bullmq-worker.ts"],
        { ...env, CONCURRENCY: String(sleepTask.concurrency) },
      );
      if (opts.mode === "http") {
        http = await serve(["deno", "run", "-A", "scripts/bench/_bullmq-http.ts"], env);
      }
    },
    enqueue: () => queue.add("sleep", { ms: 0 }),
    postUrl: () => `${http!.url}/tasks/sleep`,
    async completed() {
      return (await (await fetch(`${worker!.url}/count`)).json()).completed;
    },
    async delays(from, to) {
      const keys = (await scanKeys(admin, `bull:${queueName}:*`)).filter((k) => /:\d+$/.test(k));
      const rows = await hmgetAll(admin, keys, ["timestamp", "processedOn"]);
      return rows
        .filter(([created]) => Number(created) >= from && Number(created) <= to)
        .map(([created, started]) => Number(started) - Number(created))
        .filter(Number.isFinite);
    },
    async stop() {
      await http?.stop();
      await worker?.stop();
      await queue.obliterate({ force: true });
      await queue.close();
    },
  };
}

/** Runs `count` calls of `work` with at most `inflight` at once. */
export async function flood(count: number, inflight: number, work: () => Promise<unknown>) {
  let next = 0;
  await Promise.all(Array.from({ length: inflight }, async () => {
    while (next++ < count) await work();
  }));
}

async function settled(c: Contender, atLeast: number): Promise<number> {
  await waitFor(async () => await c.completed() >= atLeast, 120_000, `${c.name}: ${atLeast} done`);
  // Until the count stops moving (wrk's last requests may land after its count).
  let last = -1, now = await c.completed();
  while (now !== last) {
    await new Promise((r) => setTimeout(r, 200));
    last = now;
    now = await c.completed();
  }
  return now;
}

const sortAsc = (xs: number[]) => [...xs].sort((a, b) => a - b);

async function measure(c: Contender, opts: SystemOptions, admin: Runtime) {
  await c.start();
  let refused = 0;
  const post = () =>
    fetch(c.postUrl(), {
      method: "POST",
      body: '{"ms":0}',
      headers: { "content-type": "application/json" },
    }).then(async (r) => {
      await r.body?.cancel();
      // Counted, not thrown: a busy shared machine may see the odd 503; the figures say so.
      if (r.status !== 202) refused++;
    });
  const one = opts.mode === "http" ? post : () => c.enqueue();
  // Warm-up: connections, scripts, JIT of every path.
  await flood(opts.warmup, opts.connections, one);
  let done = await settled(c, opts.warmup - refused);

  // Flood: the worker drains a backlog while it builds up.
  const before = commandCalls(await admin.store.command(["INFO", "commandstats"]) as string);
  const from = Date.now();
  const t0 = performance.now();
  let tasks: number;
  if (opts.mode === "http") {
    const r = await wrk(
      c.postUrl(),
      wrkScript("POST", '{"ms":0}'),
      opts.floodSeconds,
      opts.connections,
    );
    if (r.non2xx) throw new Error(`${c.name}: ${r.non2xx} failed POSTs`);
    tasks = r.requests;
  } else {
    tasks = opts.tasks;
    await flood(tasks, opts.connections, one);
  }
  const enqueued = performance.now() - t0;
  const to = Date.now();
  await waitFor(async () => await c.completed() >= done + tasks, 120_000, `${c.name}: flood`);
  const elapsed = performance.now() - t0;
  done = await settled(c, done + tasks);
  const after = commandCalls(await admin.store.command(["INFO", "commandstats"]) as string);
  const commands: [string, number][] = [];
  let total = 0, scripts = 0;
  for (const [name, calls] of after) {
    const n = calls - (before.get(name) ?? 0);
    if (n <= 0 || IGNORED.has(name)) continue;
    commands.push([name, n / tasks]);
    total += n;
    if (SCRIPTS.has(name)) scripts += n;
  }
  commands.sort((a, b) => b[1] - a[1]);
  const backlog = sortAsc(await c.delays(from, to));

  // Fixed rate: start delay when the worker keeps up.
  const rateFrom = Date.now();
  const total2 = opts.rate * opts.rateSeconds;
  refused = 0;
  const pending: Promise<unknown>[] = [];
  let sent = 0;
  const start = performance.now();
  while (sent < total2) {
    const due = Math.min(total2, Math.floor(((performance.now() - start) / 1000) * opts.rate));
    while (sent < due) {
      pending.push(one());
      sent++;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(pending);
  const rateTo = Date.now();
  await settled(c, done + total2 - refused);
  const rate = sortAsc(await c.delays(rateFrom, rateTo));
  await c.stop();
  return {
    enqueuePerSecond: tasks / (enqueued / 1000),
    endToEndPerSecond: tasks / (elapsed / 1000),
    tasks,
    backlogP50: percentile(backlog, 0.5),
    backlogP99: percentile(backlog, 0.99),
    rateP50: percentile(rate, 0.5),
    rateP99: percentile(rate, 0.99),
    rateStarted: rate.length,
    commandsPerTask: total / tasks,
    scriptsPerTask: scripts / tasks,
    commands: commands.slice(0, 12),
    refused,
  };
}

/**
 * Measures one contender in one mode (run it in a fresh process).
 *
 * @param name `ours` or `bullmq`
 * @param opts the run
 * @returns the figures
 */
export async function measureSystem(
  name: "ours" | "bullmq",
  opts: SystemOptions,
): Promise<SystemFigures> {
  const admin = createRuntime(
    loadConfig({ REDIS_URL: opts.redis, LOG_LEVEL: "warn" }),
    exampleSystem(),
  );
  try {
    const c = name === "ours" ? ours(opts, admin) : bullmq(opts, admin);
    return await measure(c, opts, admin);
  } finally {
    await admin.store.close();
  }
}
