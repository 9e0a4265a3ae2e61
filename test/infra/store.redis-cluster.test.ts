/**
 * RedisStore on the 6-node test cluster (`scripts/redis-cluster.sh`): detected from one node,
 * commands, scripts, transactions, pipelines and pub/sub reach the right masters.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { createClient } from "redis";
import { RedisStore } from "../../src/infra/redis.ts";
import { defineScript, UnavailableError } from "../../src/infra/store.ts";
import { createLogger } from "../../src/log.ts";
import { unique, waitFor } from "../helpers.ts";

const CLUSTER_URL = Deno.env.get("TEST_REDIS_CLUSTER_URL") ?? "redis://127.0.0.1:7000";
const prefix = unique("tc");
const keys = Array.from({ length: 60 }, (_, i) => `${prefix}:k${i}`);
let store: RedisStore;

test.before(async () => {
  // The first seed is dead: the store goes on to the next.
  const seeds = CLUSTER_URL.replace("redis://", "redis://127.0.0.1:16599,");
  store = new RedisStore(seeds, createLogger("error"));
  await waitFor(async () => (await store.check()).ok, 15_000, "the cluster to be ready");
});

test.after(async () => {
  await Promise.all(keys.map((k) => store.command(["DEL", k]))).catch(() => {});
  await store.close();
});

/** Keys per master, counted on each master directly. */
async function keysPerMaster(): Promise<number[]> {
  const url = new URL(CLUSTER_URL);
  const first = Number(url.port);
  const counts: number[] = [];
  for (let port = first; port < first + 6; port++) {
    const c = createClient({ socket: { host: url.hostname, port, reconnectStrategy: false } });
    c.on("error", () => {});
    await c.connect();
    try {
      const role = await c.sendCommand(["ROLE"]) as unknown[];
      if (role[0] !== "master") continue;
      const [, page] = await c.sendCommand([
        "SCAN",
        "0",
        "MATCH",
        `${prefix}:*`,
        "COUNT",
        "10000",
      ]) as [
        string,
        string[],
      ];
      counts.push(page.length);
    } finally {
      c.destroy();
    }
  }
  return counts;
}

test("a cluster named by one node is used whole: keys of every slot are written and read", async () => {
  for (const [i, k] of keys.entries()) assert.is(await store.command(["SET", k, String(i)]), "OK");
  const counts = await keysPerMaster();
  assert.is(counts.length, 3, `masters: ${counts}`);
  assert.ok(counts.every((n) => n > 0), `keys per master: ${counts}`);
  assert.is(counts.reduce((a, b) => a + b, 0), keys.length);
  // A pipeline over many slots: one reply per command, in order.
  const replies = await store.pipeline(keys.map((k) => ["GET", k]));
  assert.equal(replies, keys.map((_, i) => String(i)));
});

test("scripts run on the master of KEYS[1] (loaded on first use there); MULTI on one slot", async () => {
  const script = defineScript({
    name: `incr-${prefix}`,
    lua: `-- ${prefix}\nreturn redis.call("INCRBY", KEYS[1], ARGV[1])`,
  });
  for (const k of keys.slice(0, 9)) {
    assert.is(await store.eval(script, [k], [5]), 5 + keys.indexOf(k));
  }
  const tag = `${prefix}:{m}`;
  keys.push(`${tag}:a`, `${tag}:b`);
  assert.equal(
    await store.multi([["SET", `${tag}:a`, "1"], ["INCR", `${tag}:a`], ["SET", `${tag}:b`, "x"]]),
    ["OK", 2, "OK"],
  );
  // A transaction over two slots is refused (a bug of the caller's, not an outage: no 503).
  const err = await store.multi([["SET", keys[0], "1"], ["SET", keys[1], "1"]]).catch((e) => e);
  assert.instance(err, Error);
  assert.not.instance(err, UnavailableError);
});

test("pub/sub: a message published on any master reaches the subscriber", async () => {
  const got: string[] = [];
  const channel = `${prefix}:chan`;
  const off = await store.subscribe(channel, (m) => got.push(m));
  for (let i = 0; i < 3; i++) await store.command(["PUBLISH", channel, `m${i}`]);
  await waitFor(() => got.length === 3, 5000, "3 messages");
  // Each PUBLISH may go to another node: the cluster bus delivers them all, not in send order.
  assert.equal([...got].sort(), ["m0", "m1", "m2"]);
  await off();
});

test("replicate(): WAIT on the key's master counts its replica", async () => {
  const waiting = new RedisStore(CLUSTER_URL, createLogger("error"), {
    waitReplicas: 1,
    waitTimeoutMs: 2000,
  });
  try {
    await waitFor(async () => (await waiting.check()).ok, 15_000, "ready");
    for (const k of keys.slice(0, 6)) {
      await waiting.command(["SET", k, "w"]);
      await waiting.replicate([k]);
    }
  } finally {
    await waiting.close();
  }
});

test.run();
