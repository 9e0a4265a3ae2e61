/**
 * Differential test of the runtime's scripts: every script the runtime declares runs, on the
 * paths the behavioural tests drive (through TaskBroker, RunStore, ScheduleStore and applyOnce,
 * as the runtime calls them), on a real Redis (under a key prefix of its own) and on the
 * embedded store; each script's replies and errors and the data left behind must be the same.
 * Times differ between the two (each reads its own clock), so epoch-ms values and ISO dates are
 * compared as placeholders, and TTLs by the minute.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import "../../mod.ts";
import type { RedisStore } from "../../src/infra/redis.ts";
import { type Command, definedScripts, type Reply, type Store } from "../../src/infra/store.ts";
import { readyRedis, type StoreTime, storeTime } from "../helpers.ts";
import { TaskBroker } from "../../src/tasks/broker.ts";
import { shardIndex, taskKeys } from "../../src/tasks/keys.ts";
import { RunStore } from "../../src/parallel/store.ts";
import { ScheduleStore } from "../../src/scheduler/store.ts";
import { applyOnce } from "../../src/consumers/once.ts";

const RUN = crypto.randomUUID().slice(0, 8);

/** The runtime's scripts: those declared by the modules `mod.ts` loads. */
const RUNTIME_SCRIPTS = definedScripts().map((s) => s.name);

/** One script call as seen at the store: its reply or error. */
interface Call {
  script: string;
  reply?: Reply;
  error?: string;
}

/** A store that records every script call's outcome. */
function recording(inner: Store, calls: Call[]): Store {
  return new Proxy(inner, {
    get(target, property) {
      if (property === "eval") {
        return async (script: { name: string; lua: string }, keys: string[], args: []) => {
          try {
            const reply = await target.eval(script, keys, args);
            calls.push({ script: script.name, reply });
            return reply;
          } catch (err) {
            calls.push({ script: script.name, error: (err as Error).message });
            throw err;
          }
        };
      }
      const value = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** What one engine did: every script call, then every key left under the prefix. */
interface Outcome {
  calls: Call[];
  data: Record<string, unknown>;
}

const swallow = (p: Promise<unknown>) => p.catch(() => {});

/** The paths of the behavioural tests, through the runtime's own classes. */
async function scenario(
  store: Store,
  prefix: string,
  names: Map<string, string>,
  time: StoreTime,
) {
  // --- async tasks ---
  const k = taskKeys(prefix);
  // Every task in shard 0, so the claims of one shard serve them all, as before sharding.
  const ref = (name: string) => {
    for (let i = 0;; i++) {
      const refcode = i ? `${name}${i}` : name;
      if (shardIndex(refcode) === 0) return refcode;
    }
  };
  const broker = new TaskBroker(store, k);
  const entry = (refcode: string, extra: Record<string, unknown> = {}) => ({
    refcode,
    type: "sleep",
    input: JSON.stringify({ ms: 1, ref: refcode }),
    maxAttempts: 2,
    ttlMs: 3_600_000,
    failedTtlMs: 7_200_000,
    delayMs: 0,
    ...extra,
  });
  const idem = { keyHash: "h1", fingerprint: "f1", ttlMs: 3_600_000 };
  await broker.enqueue(entry(ref("t_a"), { idempotency: idem }));
  await broker.enqueue(entry(ref("t_a2"), { idempotency: idem }));
  await broker.enqueue(entry(ref("t_a3"), { idempotency: { ...idem, fingerprint: "f2" } }));
  for (const name of ["t_b", "t_c", "t_d", "t_e", "t_f"]) await broker.enqueue(entry(ref(name)));
  await broker.enqueue(entry(ref("t_late"), { delayMs: 600_000 }));
  await broker.enqueue({ ...entry(ref("t_o")), type: "other", maxAttempts: 1 });
  await broker.cancel(ref("t_f"));
  await broker.claim(0, [["sleep", 2], ["other", 1]], 30_000, "w1.1", "w1");
  await broker.claim(0, [["sleep", 10]], 30_000, "w1.2", "w1");
  await broker.claim(0, [["sleep", 10]], 30_000, "w1.3", "w1");
  await broker.progress(ref("t_a"), "w1.1/1", 0.5);
  await broker.progress(ref("t_a"), "nobody/1", 0.7);
  await broker.renew([[ref("t_a"), "w1.1/1"], [ref("t_b"), "stale/1"]], 30_000);
  await broker.cancel(ref("t_c"));
  await broker.renew([[ref("t_c"), "w1.2/1"]], 30_000);
  await broker.finish([
    {
      refcode: ref("t_a"),
      type: "sleep",
      token: "w1.1/1",
      outcome: { kind: "ok", result: '{"done":true}' },
    },
    {
      refcode: ref("t_b"),
      type: "sleep",
      token: "w1.1/1",
      outcome: { kind: "retry", error: "boom", delayMs: 0 },
    },
    { refcode: ref("t_c"), type: "sleep", token: "w1.2/1", outcome: { kind: "ok", result: "1" } },
    { refcode: ref("t_d"), type: "sleep", token: "w1.2/1", outcome: { kind: "release" } },
    {
      refcode: ref("t_e"),
      type: "sleep",
      token: "w1.2/1",
      outcome: { kind: "retry", error: "later", delayMs: 600_000 },
    },
    {
      refcode: ref("t_o"),
      type: "other",
      token: "w1.1/1",
      outcome: { kind: "fail", error: "bad input" },
    },
    {
      refcode: ref("t_a"),
      type: "sleep",
      token: "w1.1/1",
      outcome: { kind: "ok", result: "again" },
    },
  ]);
  await broker.claim(0, [["sleep", 10]], 1, "w2.1", "w2");
  await time.elapse(30);
  await broker.reclaim(["sleep", "other"]);
  await broker.claim(0, [["sleep", 10]], 1, "w2.2", "w2");
  await time.elapse(30);
  await broker.reclaim(["sleep", "other"]);
  await broker.reclaim(["sleep", "other"]);
  await broker.retry(ref("t_o"));
  await broker.retry(ref("t_a"));
  await broker.retry(ref("t_missing"));
  await broker.cancel(ref("t_late"));
  await broker.cancel(ref("t_a"));
  await broker.cancel(ref("t_missing"));
  await broker.claim(0, [["sleep", 10], ["other", 10]], 30_000, "w3.1", "w3");

  // --- parallel runs ---
  const runs = new RunStore(store, prefix);
  const base = { taskId: "sum", workerCount: 2, leaseMs: 30_000, maxAttempts: 2 };
  const r1 = await runs.create({ ...base, chunks: [[1, 2], [3], [4, 5]] });
  names.set(r1, "<run1>");
  await runs.claim(r1, "p1");
  await runs.claim(r1, "p2");
  await runs.claim(r1, "p3");
  await runs.heartbeat(r1, [{ slot: "0", token: "p1" }, { slot: "1", token: "stale" }]);
  await runs.complete(r1, 0, "p1", 3, "p4");
  await runs.complete(r1, 1, "stale", 3);
  await runs.release(r1, [{ slot: "1", token: "p2" }]);
  await runs.complete(r1, 2, "p4", 9, "p5");
  await runs.claim(r1, "p6");
  await runs.complete(r1, 1, "p6", 3);
  await runs.end(r1, { slot: "merge", token: "nobody" }, { status: "completed", result: 0 });
  await runs.end(r1, { slot: "merge", token: "p6" }, { status: "completed", result: 15 });
  await runs.claim(r1, "p7");
  await runs.cancel(r1);
  const r2 = await runs.create({ ...base, leaseMs: 20, maxAttempts: 1, chunks: ["a", "b"] });
  names.set(r2, "<run2>");
  await runs.claim(r2, "q1");
  await time.elapse(50);
  await runs.claim(r2, "q2");
  await runs.heartbeat(r2, [{ slot: "0", token: "q1" }]);
  const r3 = await runs.create({ ...base, chunks: ["x"] });
  names.set(r3, "<run3>");
  await runs.claim(r3, "s1");
  await runs.end(r3, { slot: "0", token: "s1" }, { status: "failed", error: "worker threw" });
  const r4 = await runs.create({ ...base, chunks: ["y", "z"] });
  names.set(r4, "<run4>");
  await runs.cancel(r4);
  await runs.cancel("unknown-run");
  await runs.heartbeat("unknown-run", [{ slot: "0", token: "t" }]);

  // --- schedules ---
  const schedules = new ScheduleStore(store, prefix);
  const record = (status: "running" | "queued") => ({
    trigger: "schedule" as const,
    scheduledAt: 60_000,
    startedAt: status === "running" ? 60_010 : null,
    finishedAt: null,
    status,
    replica: status === "running" ? "pod-a" : null,
  });
  const begin = (
    id: string,
    lock: "skip" | "wait" | "allow" | "force" | "queue",
    upTo?: number,
    leaseMs = 30_000,
  ) =>
    schedules.begin("report", {
      id,
      claimUpTo: upTo ?? null,
      lock,
      leaseMs,
      now: 60_020,
      record: record(lock === "queue" ? "queued" : "running"),
    });
  await schedules.claim("report", 60_000);
  await schedules.claim("report", 60_000);
  await begin("run1", "skip", 120_000);
  await begin("run2", "skip", 180_000);
  await begin("run3", "wait", 240_000);
  await begin("run4", "allow");
  await begin("run5", "force");
  await begin("run6", "queue");
  await schedules.renew("report", "run1", 30_000, "pod-a");
  await schedules.renew("report", "run2", 30_000, "pod-a");
  await schedules.renew("report", "run1", 30_000, "pod-b");
  await schedules.finish("report", "run1", "pod-b", { status: "failed", finishedAt: 60_050 });
  await schedules.finish("report", "run1", "pod-a", { status: "completed", finishedAt: 60_100 });
  await schedules.finish("report", "run1", "pod-a", { status: "failed", finishedAt: 60_200 });
  await schedules.finish("report", "run4", "pod-a", {
    status: "failed",
    finishedAt: 60_300,
    error: "it broke",
    refcode: "t_x",
  });
  await begin("run7", "skip");
  // A replica dies mid-run: its lease runs out and another takes the run over. The lease is long
  // enough that the first take-over still finds it held on a busy machine's real Redis clock.
  await begin("run8", "allow", undefined, 400);
  await begin("run9", "allow", undefined, 400);
  await schedules.takeOver("report", "run8", "pod-b", 30_000, 60_400, 2);
  await time.elapse(450);
  await schedules.takeOver("report", "run8", "pod-b", 30_000, 60_500, 2);
  await schedules.takeOver("report", "run8", "pod-c", 30_000, 60_600, 2);
  await schedules.renew("report", "run8", 30_000, "pod-a");
  await schedules.renew("report", "run8", 30_000, "pod-b");
  await schedules.finish("report", "run8", "pod-a", { status: "completed", finishedAt: 60_700 });
  await schedules.takeOver("report", "run9", "pod-b", 30_000, 60_800, 0);
  for (let i = 0; i < 100; i++) await begin(`bulk${i}`, "allow");

  // --- effects applied once ---
  const marker = (id: string) => `${prefix}:{once}:${id}`;
  const counter = `${prefix}:{once}:count`;
  const effect = (id: string) => ({
    id,
    commands: [["HINCRBY", `${prefix}:{once}:orders`, id, "1"], ["RPUSH", counter, id]],
  });
  const summary: Command[] = [["HINCRBY", `${prefix}:{once}:stats`, "applied", "$applied"]];
  await applyOnce(store, marker, [effect("o1"), effect("o2")], summary);
  await applyOnce(store, marker, [effect("o2"), effect("o3"), effect("o3")], summary);
  await applyOnce(store, marker, [], summary);
  await swallow(applyOnce(store, marker, [{ id: "bad", commands: [["LPUSH", counter]] }]));
  await swallow(
    applyOnce(store, marker, [{ id: "bad2", commands: [["HSET", counter, "f", "v"]] }]),
  );
}

/** Every key under the prefix with its value (by type, in a stable order) and TTL in minutes. */
async function keysOf(store: Store, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, page] = await store.command(
      ["SCAN", cursor, "MATCH", `${prefix}:*`, "COUNT", 1000],
    ) as [string, string[]];
    keys.push(...page);
    cursor = String(next);
  } while (cursor !== "0");
  return keys;
}

async function dump(store: Store, prefix: string): Promise<Record<string, unknown>> {
  const keys = await keysOf(store, prefix);
  const out: Record<string, unknown> = {};
  const attempt = (c: Command) => store.command(c).then((r) => ({ r }), () => undefined);
  for (const key of keys.sort()) {
    // TYPE is not emulated (nothing in the runtime needs it): try each type's read in turn.
    const value = (await attempt(["GET", key])) ??
      await attempt(["HGETALL", key]).then((x) => x && _sortedPairs(x.r as string[])) ??
      await attempt(["LRANGE", key, 0, -1]).then((x) => x && { list: x.r }) ??
      await attempt(["ZRANGE", key, 0, -1, "WITHSCORES"]).then((x) =>
        x && { zset: _sortedPairs(x.r as string[]) }
      ) ??
      { set: await store.command(["SCARD", key]) };
    const pttl = Number(await store.command(["PTTL", key]));
    out[key] = { value, ttlMinutes: pttl < 0 ? pttl : Math.ceil(pttl / 60_000) };
  }
  return out;
}

/** Field/value or member/score pairs: sorted once normalized (`sortPairs`). */
function _sortedPairs(flat: string[]): { pairs: string[][] } {
  const pairs: string[][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) pairs.push([flat[i], flat[i + 1]]);
  return { pairs };
}

function sortPairs(data: Record<string, { value: unknown }>): void {
  const order = (
    a: string[],
    b: string[],
  ) => (a.join() < b.join() ? -1 : a.join() > b.join() ? 1 : 0);
  for (const entry of Object.values(data)) {
    const v = entry.value as { pairs?: string[][]; zset?: { pairs: string[][] } };
    v.pairs?.sort(order);
    v.zset?.pairs.sort(order);
  }
}

/** Takes the engine-specific parts out: prefix, run refcodes, clock readings. */
function normalize(value: unknown, prefix: string, names: Map<string, string>): unknown {
  const now = Date.now();
  const text = (s: string) => {
    // The shards' tags carry a suffix that depends on the prefix (see `taskKeys`).
    let out = s.split(prefix).join("$").replace(/(\$:tasks:\d+)~\d+/g, "$1");
    for (const [name, placeholder] of names) out = out.split(name).join(placeholder);
    out = out.replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/g, "<iso>");
    return out.replace(/\b1\d{12}\b/g, (m) => Math.abs(Number(m) - now) < 86_400_000 ? "<ms>" : m);
  };
  if (typeof value === "string") return text(value);
  if (typeof value === "number") {
    return Math.abs(value - now) < 86_400_000 ? "<ms>" : value;
  }
  if (Array.isArray(value)) return value.map((v) => normalize(v, prefix, names));
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [text(k), normalize(v, prefix, names)]),
    );
  }
  return value;
}

/** tasks.claim answers the ms until the next scheduled task: compared to the second. */
function settle(call: Call): Call {
  if (call.script !== "tasks.claim" || !Array.isArray(call.reply)) return call;
  const [next, ...rest] = call.reply as number[];
  return { ...call, reply: [next < 0 ? next : Math.round(next / 1000) * 1000, ...rest] };
}

async function outcome(store: Store, prefix: string, time: StoreTime): Promise<Outcome> {
  const calls: Call[] = [];
  const names = new Map<string, string>();
  await scenario(recording(store, calls), prefix, names, time);
  const data = await dump(store, prefix);
  const out = normalize({ calls: calls.map(settle), data }, prefix, names) as Outcome;
  sortPairs(out.data as Record<string, { value: unknown }>);
  return out;
}

let redis: RedisStore;
// Leases run out on the embedded store's manual clock; on Redis the time really passes.
const redisTime = storeTime({ name: "redis", env: {} });
const memoryTime = storeTime({ name: "memory", env: {} });
const memory = memoryTime.store!;
const redisPrefix = `dts-${RUN}-r`;
const memoryPrefix = `dts-${RUN}-m`;

test.before(async () => {
  redis = await readyRedis();
});

test.after(async () => {
  const keys = await keysOf(redis, redisPrefix);
  if (keys.length) await redis.command(["UNLINK", ...keys]);
  await Promise.all([redis.close(), memory.close()]);
});

test("every runtime script: the same replies, errors and data on Redis and the embedded store", async () => {
  const fromRedis = await outcome(redis, redisPrefix, redisTime);
  const fromMemory = await outcome(memory, memoryPrefix, memoryTime);
  assert.is(fromMemory.calls.length, fromRedis.calls.length, "as many script calls");
  fromRedis.calls.forEach((call, i) =>
    assert.equal(fromMemory.calls[i], call, `call ${i} (${call.script})`)
  );
  const [inRedis, inMemory] = [Object.keys(fromRedis.data), Object.keys(fromMemory.data)];
  assert.equal(
    { onlyInRedis: inRedis.filter((k) => !(k in fromMemory.data)) },
    { onlyInRedis: [] },
  );
  assert.equal({ onlyInMemory: inMemory.filter((k) => !(k in fromRedis.data)) }, {
    onlyInMemory: [],
  });
  for (const [key, value] of Object.entries(fromRedis.data)) {
    assert.equal(fromMemory.data[key], value, `key ${key}`);
  }
  // Every script of the runtime ran, and ran without a script error somewhere.
  const ran = new Set(fromRedis.calls.map((c) => c.script));
  assert.equal(RUNTIME_SCRIPTS.filter((name) => !ran.has(name)), [], "scripts never run");
  const ok = new Set(fromRedis.calls.filter((c) => !c.error).map((c) => c.script));
  assert.equal(RUNTIME_SCRIPTS.filter((name) => !ok.has(name)), [], "scripts that only failed");
});

test.run();
