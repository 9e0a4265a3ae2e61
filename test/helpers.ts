/**
 * @module Shared test helpers: isolated runtimes on both backends, spawned programs, waiting.
 */
import { loadConfig } from "../src/config.ts";
import { createLogger } from "../src/log.ts";
import { createRuntime, type Runtime, type RuntimeOptions } from "../src/runtime.ts";
import { System } from "../src/system.ts";
import type { Command, Reply, Store } from "../src/infra/store.ts";
import type { Bus } from "../src/infra/bus.ts";
import type { BusRecord } from "../src/infra/bus-consumer.ts";
import { MemoryStore } from "../src/infra/memory-store.ts";
import { RedisStore } from "../src/infra/redis.ts";
import { type Clock, ManualClock, systemClock } from "../src/async/clock.ts";
import type { ClaimedTask, TaskBroker } from "../src/tasks/broker.ts";
import { TASK_SHARDS } from "../src/tasks/keys.ts";

/**
 * A TCP port nothing listens on now (for a server a test starts itself).
 *
 * @returns the port
 */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * Kills a child process at `cleanup()` if it still runs.
 *
 * @param child the process
 * @returns the same process
 */
export function killOnCleanup(child: Deno.ChildProcess): Deno.ChildProcess {
  onCleanup(async () => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.status;
  });
  return child;
}

/** Real Redis for `*.redis.test.ts`. */
export const REDIS_URL = Deno.env.get("TEST_REDIS_URL") ?? "redis://127.0.0.1:6379";
/** Real Kafka for `*.kafka.test.ts`. */
export const KAFKA_BROKERS = Deno.env.get("TEST_KAFKA_BROKERS") ?? "127.0.0.1:9092";
/** The 3-node KRaft cluster of `scripts/kafka-cluster.sh`, for `*.kafka-cluster.test.ts`. */
export const KAFKA_CLUSTER_BROKERS = Deno.env.get("TEST_KAFKA_CLUSTER_BROKERS") ??
  "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094";
/** The SASL_SSL broker of `scripts/kafka-sasl.sh`, for `*.kafka-sasl.test.ts`. */
export const KAFKA_SASL_BROKER = Deno.env.get("TEST_KAFKA_SASL_BROKER") ?? "127.0.0.1:29092";
/** Where `scripts/kafka-sasl.sh` keeps its CA (`ca.pem`) and client certificate. */
export const KAFKA_SASL_TLS_DIR = Deno.env.get("TEST_KAFKA_SASL_TLS_DIR") ??
  `${
    Deno.env.get("KAFKA_HOME_CACHE") ?? `${Deno.env.get("HOME") ?? "/root"}/.cache/svc-kafka`
  }/sasl-29092/tls`;
/** The repository's root. */
export const ROOT = new URL("../", import.meta.url).pathname;
/** The example system's entry, relative to the root: what `deno task start` runs. */
export const EXAMPLE_ENTRY = "src/example/main.ts";

const _cleanups: (() => Promise<void> | void)[] = [];

/**
 * Registers work for `cleanup()` (run it in `test.after`).
 *
 * @param fn what to undo
 */
export function onCleanup(fn: () => Promise<void> | void): void {
  _cleanups.push(fn);
}

/** Runs every registered cleanup, newest first. Use as `test.after(cleanup)`. */
export async function cleanup(): Promise<void> {
  while (_cleanups.length) {
    try {
      await _cleanups.pop()!();
    } catch (err) {
      console.error("cleanup failed:", err);
    }
  }
}

/**
 * A unique name for keys, topics and groups.
 *
 * @param label a readable part
 * @returns e.g. `t-orders-1a2b3c4d`
 */
export function unique(label = "t"): string {
  return `${label}-${crypto.randomUUID().slice(0, 8)}`;
}

/** How time passes for a test on one engine: see {@link storeTime}. */
export interface StoreTime {
  /** The store to run on (the embedded one on the manual clock); undefined on Redis. */
  store?: Store;
  /** The manual clock (embedded engine only). */
  clock?: ManualClock;
  /** The clock for the test's loops (heartbeats, polls): the manual one, or the wall clock. */
  loops: Clock;
  /** Lets `ms` pass on the store's clock: moved at once when manual, waited for on Redis. */
  elapse(ms: number): Promise<void>;
  /** The store's time now as the test knows it: the manual clock, or the wall clock. */
  now(): number;
  /**
   * Checks a time stamp the store's scripts wrote (`TIME`) since `since` (from `now()`): the
   * manual clock did not move, so exactly `since`; on Redis (its own clock, on this machine) a
   * time between `since` and now.
   */
  assertStamp(stamp: string | null | undefined, since: number): void;
}

/**
 * The time of a test's store. On the embedded engine its scripts' `TIME` and key expiry follow
 * a manual clock, so leases, retries and TTLs run out without waiting; Redis keeps its own
 * clock, so there the time really passes.
 *
 * @param backend the engine
 * @param start where the manual clock starts (epoch ms; default now)
 * @returns the store (embedded) and how to let time pass
 */
export function storeTime(backend: Backend, start = Date.now()): StoreTime {
  if (backend.name === "redis") {
    return {
      loops: systemClock,
      now: () => Date.now(),
      // Redis's clock cannot be moved: the one place where a test really waits for time.
      elapse: (ms) => new Promise((r) => setTimeout(r, ms)),
      assertStamp(stamp, since) {
        const at = Date.parse(stamp ?? "");
        // Redis's TIME is read on this machine; a second either way allows for its rounding.
        if (!(at >= since - 1000 && at <= Date.now() + 1000)) {
          throw new Error(
            `Time stamp ${stamp} is not between ${new Date(since).toISOString()} and now`,
          );
        }
      },
    };
  }
  const clock = new ManualClock(start, 200);
  const store = new MemoryStore({ clock: () => clock.now() });
  return {
    store,
    clock,
    loops: clock,
    now: () => clock.now(),
    elapse: (ms) => clock.advance(ms),
    assertStamp(stamp, since) {
      const want = new Date(since).toISOString();
      if (stamp !== want) throw new Error(`Time stamp ${stamp} is not the clock's ${want}`);
    },
  };
}

/** A backend the behavioural tests run on. */
export interface Backend {
  name: "memory" | "redis";
  /** Environment to add (REDIS_URL for redis). */
  env: Record<string, string>;
}

/**
 * The stores behavioural tests run on: the embedded one always, real Redis unless
 * `TEST_BACKENDS=memory`.
 *
 * @returns the backends
 */
export function backends(): Backend[] {
  const only = Deno.env.get("TEST_BACKENDS");
  const all: Backend[] = [{ name: "memory", env: {} }, { name: "redis", env: { REDIS_URL } }];
  return only ? all.filter((b) => only.split(",").includes(b.name)) : all;
}

/** A bus (with its store) the consumer tests run on. */
export interface BusBackend {
  /** `memory`: embedded bus and store; `kafka`: the real broker with real Redis. */
  name: "memory" | "kafka";
  /** Environment to add (KAFKA_BROKERS and REDIS_URL for kafka). */
  env: Record<string, string>;
}

/**
 * The buses behavioural tests run on: the embedded one always, the real broker (with real
 * Redis) unless `TEST_BUSES=memory`.
 *
 * @returns the backends
 */
export function busBackends(): BusBackend[] {
  const only = Deno.env.get("TEST_BUSES");
  const all: BusBackend[] = [
    { name: "memory", env: {} },
    { name: "kafka", env: { KAFKA_BROKERS, REDIS_URL } },
  ];
  return only ? all.filter((b) => only.split(",").includes(b.name)) : all;
}

/**
 * Deletes topics from the real broker at `cleanup()`.
 *
 * @param topics full topic names (with their prefix)
 * @param brokers which cluster (default the single test broker)
 */
export function deleteTopicsLater(topics: string[], brokers = KAFKA_BROKERS): void {
  onCleanup(async () => {
    const { default: kafkajs } = await import("kafkajs");
    const admin = new kafkajs.Kafka({
      brokers: brokers.split(","),
      logLevel: kafkajs.logLevel.NOTHING,
    }).admin();
    try {
      await admin.connect();
      await admin.deleteTopics({ topics, timeout: 5000 });
    } catch { /* already gone, or the broker is down */ }
    await admin.disconnect().catch(() => {});
  });
}

/**
 * Collects the records of a topic from its start, read in a group of its own once the reader
 * is in it; the reader stops at `cleanup()`.
 *
 * @param bus the bus
 * @param topic the full topic name (with its prefix)
 * @param label names the reader's group
 * @returns the records: the array grows as more arrive
 */
export async function readTopic(bus: Bus, topic: string, label = "reader"): Promise<BusRecord[]> {
  const records: BusRecord[] = [];
  const reader = bus.consumer({
    groupId: unique(label),
    topics: [topic],
    maxWaitMs: 100,
    onRecords: (r) => records.push(...r),
  });
  await reader.start();
  onCleanup(() => reader.stop());
  await waitFor(() => reader.inGroup(), 20_000, `the ${label} in its group`);
  return records;
}

/** Options of `testRuntime`. */
export interface TestRuntimeOptions extends RuntimeOptions {
  /** Use real Redis. */
  redis?: boolean;
  /** Use the real Kafka broker. */
  kafka?: boolean;
  /** More environment (ROLE, SCHEDULE_*_CRON…). */
  env?: Record<string, string>;
  /** The system (empty by default). */
  system?: System;
}

/**
 * A runtime with its own KEY_PREFIX and TOPIC_PREFIX; closed and its Redis keys deleted by
 * `cleanup()`.
 *
 * @param options backends, environment, system
 * @returns the runtime
 */
export function testRuntime(options: TestRuntimeOptions = {}): Runtime {
  const prefix = unique("t");
  const env: Record<string, string> = {
    KEY_PREFIX: prefix,
    TOPIC_PREFIX: `${prefix}.`,
    LOG_LEVEL: Deno.env.get("TEST_LOG_LEVEL") ?? "error",
    ...(options.redis ? { REDIS_URL } : {}),
    ...(options.kafka ? { KAFKA_BROKERS } : {}),
    ...options.env,
  };
  const config = loadConfig(env);
  const rt = createRuntime(config, options.system ?? new System(), {
    log: options.log ?? createLogger(config.logLevel, { test: prefix }),
    store: options.store,
    bus: options.bus,
  });
  onCleanup(async () => {
    if (rt.store.kind === "redis") await deleteKeys(rt, `${config.keyPrefix}:*`).catch(() => {});
    await Promise.allSettled([rt.bus.close(), rt.store.close()]);
  });
  return rt;
}

/**
 * A runtime of {@link testRuntime} on an engine whose store keeps the test's time (see
 * {@link storeTime}), once the store answers.
 *
 * @param backend the engine
 * @param options `testRuntime`'s options, and `start`: where the manual clock starts
 * @returns the runtime and its time
 */
export async function timedRuntime(
  backend: Backend,
  options: Omit<TestRuntimeOptions, "redis" | "store"> & { start?: number } = {},
): Promise<{ rt: Runtime; time: StoreTime }> {
  const { start, ...rest } = options;
  const time = storeTime(backend, start);
  const rt = testRuntime({ ...rest, redis: backend.name === "redis", store: time.store });
  await waitFor(async () => (await rt.store.check()).ok, 5000, "store ready");
  return { rt, time };
}

/**
 * A RedisStore on the tests' Redis, once it answers.
 *
 * @param url the Redis
 * @returns the store
 * @throws when Redis does not answer within 5 s
 */
export async function readyRedis(url = REDIS_URL): Promise<RedisStore> {
  const store = new RedisStore(url, createLogger("error"));
  try {
    await waitFor(async () => (await store.check()).ok, 5000, `Redis at ${url}`, 50);
  } catch {
    await store.close();
    throw new Error(`Redis at ${url} is not reachable`);
  }
  return store;
}

/**
 * Starts a redis-server of the caller's own on `port` (no persistence), killed at `cleanup()`,
 * and waits until it accepts connections.
 *
 * @param port its port
 * @param extra more arguments (`--replicaof …`, `--cluster-enabled yes`…)
 * @param dir its working directory; a new temporary one by default
 * @returns the process
 */
export async function redisServer(
  port: number,
  extra: string[] = [],
  dir?: string,
): Promise<Deno.ChildProcess> {
  const child = killOnCleanup(
    new Deno.Command("redis-server", {
      args: [
        "--bind",
        "127.0.0.1",
        "--port",
        String(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        dir ?? await Deno.makeTempDir({ prefix: "redis-" }),
        ...extra,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn(),
  );
  await waitFor(
    async () => {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        return true;
      } catch {
        return false;
      }
    },
    10_000,
    `redis-server on ${port}`,
  );
  return child;
}

/**
 * Deletes keys matching a pattern (SCAN, never KEYS on a shared server).
 *
 * @param rt a runtime on Redis
 * @param pattern e.g. `t-1234:*`
 */
export async function deleteKeys(rt: Runtime, pattern: string): Promise<void> {
  const nodes = await clusterMasters(rt);
  if (nodes.length === 0) return await _scanDelete((c) => rt.store.command(c), pattern, rt);
  // A cluster: SCAN walks one node's keys, so walk every master's.
  const { createClient } = await import("redis");
  for (const node of nodes) {
    const client = createClient({ socket: { ...node, reconnectStrategy: false } });
    client.on("error", () => {});
    await client.connect();
    try {
      await _scanDelete((c) => client.sendCommand(c.map(String)) as Promise<Reply>, pattern, rt);
    } finally {
      client.destroy();
    }
  }
}

async function _scanDelete(
  send: (command: Command) => Promise<Reply>,
  pattern: string,
  rt: Runtime,
): Promise<void> {
  let cursor = "0";
  do {
    const reply = await send(["SCAN", cursor, "MATCH", pattern, "COUNT", 1000]) as [
      string,
      string[],
    ];
    cursor = String(reply[0]);
    // One key at a time through the store: keys of one page may sit in different slots.
    await Promise.all(reply[1].map((k) => rt.store.command(["UNLINK", k])));
  } while (cursor !== "0");
}

/**
 * The masters of the cluster a runtime's store is on (none on a single server).
 *
 * @param rt a runtime on Redis
 * @returns host and port of each master
 */
export async function clusterMasters(rt: Runtime): Promise<{ host: string; port: number }[]> {
  let nodes: string;
  try {
    nodes = String(await rt.store.command(["CLUSTER", "NODES"]));
  } catch {
    return [];
  }
  return nodes.split("\n").map((l) => l.split(" ")).filter((f) =>
    f.length > 8 && f[2].includes("master") && !f[2].includes("fail")
  ).map((f) => {
    const [host, port] = f[1].split("@")[0].split(/:(?=\d+$)/);
    return { host, port: Number(port) };
  });
}

/**
 * Polls until `fn` returns a truthy value.
 *
 * @param fn the condition (may be async)
 * @param timeoutMs how long to wait
 * @param what named in the timeout error
 * @param intervalMs time between polls
 * @returns the truthy value
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  timeoutMs = 10_000,
  what = "condition",
  intervalMs = 25,
): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const value = await fn();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ""}`);
}

/**
 * CPU time a process used so far (user + system, from `/proc`), ms.
 *
 * @param pid the process (default this one)
 * @returns milliseconds, in steps of 10
 */
export function cpuMs(pid = Deno.pid): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * The CPU time a process uses during the next `ms` of real time: how tests see that threads
 * stopped. The window is real time on purpose: threads' CPU cannot follow a manual clock.
 *
 * @param ms the window
 * @param pid the process (default this one)
 * @returns milliseconds of CPU used in the window
 */
export async function cpuDuring(ms: number, pid = Deno.pid): Promise<number> {
  const before = cpuMs(pid);
  await new Promise((r) => setTimeout(r, ms));
  return cpuMs(pid) - before;
}

/** A program started with `deno run -A <entry>`. */
export interface Program {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  pid: number;
  /** Every stdout/stderr line so far. */
  logs: string[];
  /** Sends a signal (SIGTERM, SIGKILL…). */
  kill(signal?: Deno.Signal): void;
  /** Resolves with the exit status. */
  exited: Promise<Deno.CommandStatus>;
  /** Sends SIGTERM and waits for the exit. */
  stop(): Promise<Deno.CommandStatus>;
}

/**
 * Starts the program as its own process with `PORT=0`, waits for its "listening" line.
 *
 * @param env environment (ROLE, REDIS_URL, KEY_PREFIX…); PATH and HOME are passed through
 * @param options `entry` (default {@link EXAMPLE_ENTRY}), `cwd` (default {@link ROOT}),
 *   `timeoutMs` for start-up
 * @returns the running program; killed by `cleanup()` if still running
 */
export async function spawnProgram(
  env: Record<string, string>,
  options: { entry?: string; cwd?: string; timeoutMs?: number } = {},
): Promise<Program> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", options.entry ?? EXAMPLE_ENTRY],
    cwd: options.cwd ?? ROOT,
    env: { PORT: "0", LOG_LEVEL: "info", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const logs: string[] = [];
  let onListen: (port: number) => void;
  const listening = new Promise<number>((resolve) => (onListen = resolve));
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let buf = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        logs.push(line);
        if (Deno.env.get("TEST_SHOW_LOGS")) console.log(`[${child.pid}] ${line}`);
        if (line.includes('"listening"')) {
          try {
            onListen(JSON.parse(line).port);
          } catch { /* not JSON */ }
        }
      }
    }
    if (buf) logs.push(buf);
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const exited = child.status.then(async (s) => {
    await pumps;
    return s;
  });
  const kill = (signal: Deno.Signal = "SIGTERM") => {
    try {
      child.kill(signal);
    } catch { /* already gone */ }
  };
  let done = false;
  exited.then(() => (done = true));
  onCleanup(async () => {
    if (!done) {
      kill("SIGKILL");
      await exited;
    }
  });
  const timeoutMs = options.timeoutMs ?? 30_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const port = await Promise.race([
    listening,
    exited.then((s) => {
      throw new Error(
        `Program exited with ${s.code} before listening:\n${logs.slice(-20).join("\n")}`,
      );
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `Program did not listen within ${timeoutMs} ms:\n${logs.slice(-20).join("\n")}`,
            ),
          ),
        timeoutMs,
      );
    }),
  ]).finally(() => clearTimeout(timer));
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    pid: child.pid,
    logs,
    kill,
    exited,
    stop: () => {
      kill("SIGTERM");
      return exited;
    },
  };
}

/**
 * Runs the program to completion (for start-up errors).
 *
 * @param env environment
 * @param entry the program's entry (default {@link EXAMPLE_ENTRY})
 * @returns exit code and output
 */
export async function runProgram(
  env: Record<string, string>,
  entry: string = EXAMPLE_ENTRY,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", entry],
    cwd: ROOT,
    env: { PORT: "0", ...env },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * The status of a program's `/readyz`, its body discarded.
 *
 * @param url the program's base URL
 * @returns the HTTP status
 */
export async function readyzStatus(url: string): Promise<number> {
  const r = await fetch(`${url}/readyz`);
  await r.body?.cancel();
  return r.status;
}

/**
 * Claims tasks as a worker would over every shard (tests that play a worker by hand): from each
 * shard in turn, until the asked number per type is reached.
 *
 * @param broker the broker
 * @param wants `[type, how many]`
 * @param leaseMs lease length
 * @param tokenPrefix the claims' token prefix
 * @param worker the worker's id
 * @returns the started tasks
 */
export async function claimAll(
  broker: TaskBroker,
  wants: readonly (readonly [string, number])[],
  leaseMs: number,
  tokenPrefix: string,
  worker: string,
): Promise<ClaimedTask[]> {
  const left = new Map(wants.map(([type, n]) => [type, n]));
  const out: ClaimedTask[] = [];
  for (let shard = 0; shard < TASK_SHARDS; shard++) {
    const { tasks } = await broker.claim(shard, [...left], leaseMs, tokenPrefix, worker);
    for (const task of tasks) left.set(task.type, left.get(task.type)! - 1);
    out.push(...tasks);
  }
  return out;
}

/**
 * POSTs a JSON body.
 *
 * @param url where to
 * @param body the value, sent as `application/json`
 * @returns the response
 */
export function postJson(url: string, body: unknown): Promise<Response> {
  return fetch(url, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json" },
  });
}

/**
 * GETs a JSON body.
 *
 * @param url where from
 * @returns the parsed body
 * @throws {Error} naming the status and body when the answer is not 2xx
 */
export async function getJson(url: string): Promise<any> {
  const r = await fetch(url);
  const body = await r.json();
  if (!r.ok) throw new Error(`${url} → ${r.status} ${JSON.stringify(body)}`);
  return body;
}
