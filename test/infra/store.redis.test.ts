/**
 * Differential test: the same commands on real Redis (through RedisStore) and on MemoryStore
 * must give identical replies and identical errors.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { EMULATED_COMMANDS, MemoryStore } from "../../src/infra/memory-store.ts";
import type { RedisStore } from "../../src/infra/redis.ts";
import { type Command, defineScript, type Reply, type Store } from "../../src/infra/store.ts";
import { readyRedis, waitFor } from "../helpers.ts";

const REDIS_URL = Deno.env.get("TEST_REDIS_URL") ?? "redis://127.0.0.1:6379";
const PREFIX = `dt-${crypto.randomUUID().slice(0, 8)}:`;

/** One step of a case; `$name` in a command is a key under this run's prefix. */
type Step =
  | Command
  | { multi: Command[] }
  | { pipeline: Command[] }
  | { eval: ReturnType<typeof defineScript>; keys: string[]; args: (string | number)[] }
  | { sleep: number }
  | { unordered: Command }
  | { map: Command; with: (reply: Reply) => unknown }
  /** SCAN with these arguments after the cursor, every page (a shared Redis has other keys). */
  | { scan: Command };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const k = (name: string) => `${PREFIX}${name}`;
const expand = (c: Command): Command =>
  c.map((x) => typeof x === "string" && x.startsWith("$") ? k(x.slice(1)) : x);

/** Replies with this run's prefix taken out of keys, errors as comparable text. */
function clean(value: unknown): unknown {
  if (typeof value === "string") return value.split(PREFIX).join("$");
  if (Array.isArray(value)) return value.map(clean);
  if (value instanceof Error) {
    const e = value as Error & { errorIndexes?: number[]; replies?: unknown[] };
    // Where a script failed (Redis always says, the embedded store when Lua still knows), and
    // the embedded store's note on a command it does not emulate.
    const message = e.message.replace(/ script: \w+, on @user_script:\d+\.$/, "")
      .replace(" (not emulated by the embedded store)", "");
    return e.errorIndexes
      ? { error: clean(message), errorIndexes: e.errorIndexes, replies: clean(e.replies) }
      : { error: clean(message) };
  }
  return value;
}

async function run(store: Store, steps: Step[]): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const step of steps) {
    let p: Promise<unknown>;
    if (Array.isArray(step)) p = store.command(expand(step));
    else if ("multi" in step) p = store.multi(step.multi.map(expand));
    else if ("pipeline" in step) p = store.pipeline(step.pipeline.map(expand));
    else if ("eval" in step) p = store.eval(step.eval, step.keys.map(k), step.args);
    else if ("unordered" in step) {
      p = store.command(expand(step.unordered)).then((r) =>
        Array.isArray(r) ? [...r].map(String).sort() : r
      );
    } else if ("map" in step) p = store.command(expand(step.map)).then(step.with);
    else if ("scan" in step) p = scanEvery(store, expand(step.scan));
    else {
      await elapse(store, step.sleep);
      continue;
    }
    out.push(await p.then(clean, clean));
  }
  return out;
}

// --- scripts: the same Lua on both ---

// KEYS[1] counter; ARGV[1] step. Returns the new value.
const incr = defineScript({
  name: "incr",
  lua: `return redis.call("INCRBY", KEYS[1], ARGV[1])`,
});
// KEYS[1] zset of due items, KEYS[2] hash of states; ARGV[1] now, ARGV[2] limit.
// Moves up to `limit` members with score <= now to "active"; returns them.
const claim = defineScript({
  name: "claim",
  lua: `
    local due = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, ARGV[2])
    for _, id in ipairs(due) do
      redis.call("ZREM", KEYS[1], id)
      redis.call("HSET", KEYS[2], id, "active")
    end
    return due`,
});
// KEYS[1] zset; ARGV[1] member. Returns {score as Lua sees it, size, a status reply, members}.
const inspect = defineScript({
  name: "inspect",
  lua: `
    local s = redis.call("ZSCORE", KEYS[1], ARGV[1])
    local n = redis.call("ZCARD", KEYS[1])
    return {s, n, redis.call("PING").ok, redis.call("ZRANGE", KEYS[1], 0, -1, "WITHSCORES")}`,
});
// KEYS[1] any key. Returns the GET reply; nil (Lua false) when missing.
const getOrNil = defineScript({
  name: "get-or-nil",
  lua: `local v = redis.call("GET", KEYS[1]) if not v then return false end return v`,
});
// KEYS[1] zset; ARGV[1] member. Returns the score as a Lua number (truncated to an integer).
const scoreNumber = defineScript({
  name: "score-number",
  lua: `return tonumber(redis.call("ZSCORE", KEYS[1], ARGV[1]))`,
});
// KEYS[1] a string key. Fails with WRONGTYPE.
const failing = defineScript({
  name: "failing",
  lua: `return redis.call("LPUSH", KEYS[1], "x")`,
});
// No keys. Returns an error reply.
const errorReply = defineScript({
  name: "error-reply",
  lua: `return redis.error_reply("ERR not allowed")`,
});
// KEYS[1] a hash. Returns HGETALL as Lua sees it (flat) and HINCRBY.
const hashScript = defineScript({
  name: "hash",
  lua: `return {redis.call("HGETALL", KEYS[1]), redis.call("HINCRBY", KEYS[1], "f", "7")}`,
});
// KEYS[1] string key. Sets it, then reads TTL inside the script (time is frozen).
const setAndTtl = defineScript({
  name: "set-and-ttl",
  lua: `redis.call("SET", KEYS[1], "v", "EX", 100) return redis.call("TTL", KEYS[1])`,
});

/** Cases: name → steps. Each case uses its own keys (`$<case>-...`) so cases are independent. */
const CASES: Record<string, (p: string) => Step[]> = {
  "PING": () => [["PING"], ["PING", "hello"], ["PING", "a", "b"]],
  "SET and GET": (p) => [
    ["GET", `$${p}`],
    ["SET", `$${p}`, "v"],
    ["GET", `$${p}`],
    ["SET", `$${p}`, "w", "NX"],
    ["SET", `$${p}`, "w", "XX"],
    ["SET", `$${p}-x`, "w", "XX"],
    ["SET", `$${p}`, "z", "GET"],
    ["SET", `$${p}-new`, "z", "GET"],
    ["SET", `$${p}`, "q", "NX", "GET"],
    ["SET", `$${p}`, "v", "NX", "XX"],
    ["SET", `$${p}`, "v", "EX", "0"],
    ["SET", `$${p}`, "v", "EX", "-1"],
    ["SET", `$${p}`, "v", "EX", "abc"],
    ["SET", `$${p}`, "v", "EX"],
    ["SET", `$${p}`, "v", "EX", 10, "PX", 100],
    ["SET", `$${p}`, "v", "BOGUS"],
    ["SET", `$${p}`, ""],
    ["GET", `$${p}`],
    ["SET", `$${p}`, "ünï©ødé"],
    ["GET", `$${p}-nx`],
  ],
  "SET with TTL options": (p) => [
    ["SET", `$${p}`, "v", "EX", 100],
    ["TTL", `$${p}`],
    ["SET", `$${p}`, "w", "KEEPTTL"],
    ["TTL", `$${p}`],
    ["SET", `$${p}`, "w"],
    ["TTL", `$${p}`],
    ["SET", `$${p}`, "v", "PX", 100000],
    ["TTL", `$${p}`],
    { map: ["PTTL", `$${p}`], with: (r: Reply) => Math.round(Number(r) / 1000) },
    ["SET", `$${p}`, "v", "EX", 10, "KEEPTTL"],
    ["TTL", `$${p}`],
    ["TTL", `$${p}`],
    ["TTL", `$${p}`],
  ],
  "DEL, UNLINK, EXISTS": (p) => [
    ["SET", `$${p}-s`, "v"],
    ["HSET", `$${p}-h`, "f", "v"],
    ["LPUSH", `$${p}-l`, "a"],
    ["SADD", `$${p}-t`, "a"],
    ["ZADD", `$${p}-z`, 1, "a"],
    ["EXISTS", `$${p}-s`, `$${p}-h`, `$${p}-none`],
    ["DEL", `$${p}-s`, `$${p}-h`, `$${p}-none`],
    ["UNLINK", `$${p}-l`, `$${p}-t`],
    ["DEL", `$${p}-l`],
    ["EXISTS", `$${p}-s`, `$${p}-z`],
    ["DEL"],
  ],
  "EXPIRE, PEXPIRE, PERSIST, TTL": (p) => [
    ["EXPIRE", `$${p}`, 100],
    ["TTL", `$${p}`],
    ["PTTL", `$${p}`],
    ["SET", `$${p}`, "v"],
    ["TTL", `$${p}`],
    ["PTTL", `$${p}`],
    ["EXPIRE", `$${p}`, 100],
    ["TTL", `$${p}`],
    ["EXPIRE", `$${p}`, 200, "NX"],
    ["EXPIRE", `$${p}`, 200, "XX"],
    ["TTL", `$${p}`],
    ["EXPIRE", `$${p}`, 100, "GT"],
    ["EXPIRE", `$${p}`, 300, "GT"],
    ["EXPIRE", `$${p}`, 400, "LT"],
    ["EXPIRE", `$${p}`, 250, "LT"],
    ["TTL", `$${p}`],
    ["EXPIRE", `$${p}`, 100, "NX", "XX"],
    ["EXPIRE", `$${p}`, 100, "GT", "LT"],
    ["EXPIRE", `$${p}`, 100, "FOO"],
    ["EXPIRE", `$${p}`, "1.5"],
    ["PERSIST", `$${p}`],
    ["PERSIST", `$${p}`],
    ["TTL", `$${p}`],
    ["EXPIRE", `$${p}`, 100, "LT"],
    ["TTL", `$${p}`],
    ["PERSIST", `$${p}`],
    ["EXPIRE", `$${p}`, 100, "GT"],
    ["PEXPIRE", `$${p}`, 100000],
    ["TTL", `$${p}`],
    ["TTL", `$${p}`],
    { map: ["TTL", `$${p}`], with: (r: Reply) => Math.abs(Number(r) - 500) <= 1 },
    ["EXISTS", `$${p}`],
    ["SET", `$${p}`, "v"],
    ["EXPIRE", `$${p}`, 0],
    ["EXISTS", `$${p}`],
    ["SET", `$${p}`, "v"],
    ["PEXPIRE", `$${p}`, -5],
    ["GET", `$${p}`],
    ["PERSIST", `$${p}-none`],
    ["SET", `$${p}-o`, "v"],
    ["SET", `$${p}-o`, "v", "EX", "9223372036854775807"],
    ["SET", `$${p}-o`, "v", "PX", "9223372036854775807"],
    ["SET", `$${p}-o`, "v", "EX", "9223372036854775808"],
    ["EXPIRE", `$${p}-o`, "9223372036854775807"],
    ["PEXPIRE", `$${p}-o`, "9223372036854775807"],
    ["EXPIRE", `$${p}-o`, "-9223372036854775808"],
    ["EXISTS", `$${p}-o`],
  ],
  "TTL expiry with PX 50": (p) => [
    ["SET", `$${p}`, "v", "PX", 50],
    ["HSET", `$${p}-h`, "f", "v"],
    ["PEXPIRE", `$${p}-h`, 50],
    ["RPUSH", `$${p}-l`, "a"],
    ["PEXPIRE", `$${p}-l`, 50],
    ["GET", `$${p}`],
    ["EXISTS", `$${p}-h`],
    { sleep: 120 },
    ["GET", `$${p}`],
    ["TTL", `$${p}`],
    ["PTTL", `$${p}`],
    ["HGET", `$${p}-h`, "f"],
    ["LLEN", `$${p}-l`],
    ["EXISTS", `$${p}`, `$${p}-h`, `$${p}-l`],
    ["SET", `$${p}`, "again", "NX"],
    ["TTL", `$${p}`],
    { scan: ["MATCH", `$${p}*`, "COUNT", 10000] },
  ],
  "INCR family": (p) => [
    ["INCR", `$${p}`],
    ["INCRBY", `$${p}`, 10],
    ["INCRBY", `$${p}`, -100],
    ["INCRBY", `$${p}`, "1.5"],
    ["INCRBY", `$${p}`, "abc"],
    ["SET", `$${p}-s`, "abc"],
    ["INCR", `$${p}-s`],
    ["SET", `$${p}-s`, " 1"],
    ["INCR", `$${p}-s`],
    ["SET", `$${p}-s`, "01"],
    ["INCR", `$${p}-s`],
    ["SET", `$${p}-s`, "9223372036854775807"],
    ["INCR", `$${p}-s`],
    ["SET", `$${p}-s`, "-9223372036854775808"],
    ["SET", `$${p}-s`, "10"],
    ["EXPIRE", `$${p}-s`, 100],
    ["INCR", `$${p}-s`],
    ["TTL", `$${p}-s`],
    ["LPUSH", `$${p}-l`, "a"],
    ["INCR", `$${p}-l`],
  ],
  "hashes": (p) => [
    ["HSET", `$${p}`, "a", "1", "b", "2"],
    ["HSET", `$${p}`, "a", "3", "c", "4"],
    ["HSET", `$${p}`, "a"],
    ["HSET", `$${p}`, "a", "1", "b"],
    ["HGET", `$${p}`, "a"],
    ["HGET", `$${p}`, "zz"],
    ["HGET", `$${p}-none`, "a"],
    ["HMGET", `$${p}`, "a", "zz", "c"],
    ["HMGET", `$${p}-none`, "a"],
    ["HGETALL", `$${p}`],
    ["HGETALL", `$${p}-none`],
    ["HVALS", `$${p}`],
    ["HDEL", `$${p}`, "a", "zz", "b"],
    ["HGETALL", `$${p}`],
    ["HINCRBY", `$${p}`, "n", 5],
    ["HINCRBY", `$${p}`, "n", -7],
    ["HINCRBY", `$${p}`, "d", 1],
    ["HINCRBY", `$${p}`, "n", "x"],
    ["HSET", `$${p}-new2`, "f", "1e4932"],
    ["HGET", `$${p}-new2`, "f"],
    ["EXISTS", `$${p}-new`],
    ["HDEL", `$${p}`, "c", "d", "n", "f"],
    ["EXISTS", `$${p}`],
    ["HSET", `$${p}-o`, "b", "1", "10", "2", "a", "3", "2", "4", "-1", "5", "01", "6"],
    ["HGETALL", `$${p}-o`],
    ["SET", `$${p}-s`, "v"],
    ["HSET", `$${p}-s`, "a", "1"],
    ["HGET", `$${p}-s`, "a"],
    ["HGETALL", `$${p}-s`],
    ["HDEL", `$${p}-s`, "a"],
  ],
  "lists": (p) => [
    ["LPUSH", `$${p}`, "a", "b", "c"],
    ["RPUSH", `$${p}`, "d", "e"],
    ["LRANGE", `$${p}`, 0, -1],
    ["LRANGE", `$${p}`, 1, 2],
    ["LRANGE", `$${p}`, -2, -1],
    ["LRANGE", `$${p}`, -100, 100],
    ["LRANGE", `$${p}`, 3, 1],
    ["LRANGE", `$${p}`, 10, 20],
    ["LRANGE", `$${p}-none`, 0, -1],
    ["LRANGE", `$${p}`, "a", 1],
    ["LLEN", `$${p}`],
    ["LLEN", `$${p}-none`],
    ["LPOP", `$${p}`],
    ["RPOP", `$${p}`],
    ["LPOP", `$${p}`, 2],
    ["RPOP", `$${p}`, 0],
    ["LPOP", `$${p}`, -1],
    ["LPOP", `$${p}`, 1, 2],
    ["LPOP", `$${p}-none`],
    ["LPOP", `$${p}-none`, 2],
    ["RPOP", `$${p}`, 5],
    ["EXISTS", `$${p}`],
    ["RPUSH", `$${p}`, "a", "b", "a", "c", "a", "b"],
    ["LRANGE", `$${p}`, 0, -1],
    ["RPUSH", `$${p}`, "b", "a", "b"],
    ["LRANGE", `$${p}`, 0, -1],
    ["LRANGE", `$${p}`, 0, -1],
    ["RPUSH", `$${p}`, "1", "2", "3", "4", "5"],
    ["LTRIM", `$${p}`, 1, -2],
    ["LRANGE", `$${p}`, 0, -1],
    ["LTRIM", `$${p}`, 0, 1],
    ["LRANGE", `$${p}`, 0, -1],
    ["LTRIM", `$${p}`, 5, 10],
    ["EXISTS", `$${p}`],
    ["LTRIM", `$${p}-none`, 0, 1],
    ["RPUSH", `$${p}-a`, "1", "2", "3"],
    ["LRANGE", `$${p}-a`, 0, -1],
    ["LRANGE", `$${p}-b`, 0, -1],
    ["EXISTS", `$${p}-b`],
    ["LRANGE", `$${p}-c`, 0, -1],
    ["SET", `$${p}-s`, "v"],
    ["LRANGE", `$${p}-c`, 0, -1],
    ["LPUSH", `$${p}-s`, "x"],
    ["LRANGE", `$${p}-s`, 0, -1],
    ["RPOP", `$${p}-s`],
  ],
  "a long list used as a queue": (p) => {
    const push: Command = ["RPUSH", `$${p}`];
    for (let i = 0; i < 3000; i++) push.push(`v${i}`);
    const steps: Step[] = [push];
    for (let i = 0; i < 40; i++) {
      steps.push(["LPUSH", `$${p}`, `l${i}`], ["RPOP", `$${p}`, 7], ["LPOP", `$${p}`]);
    }
    steps.push(
      ["LLEN", `$${p}`],
      ["LRANGE", `$${p}`, 100, 110],
      ["LRANGE", `$${p}`, -5, -1],
      ["LTRIM", `$${p}`, 10, -10],
      ["LLEN", `$${p}`],
      ["LRANGE", `$${p}`, 0, 3],
      ["LRANGE", `$${p}`, 0, 1],
    );
    return steps;
  },
  "sets": (p) => [
    ["SADD", `$${p}`, "a", "b", "a"],
    ["SADD", `$${p}`, "c"],
    ["SREM", `$${p}`, "a", "zz"],
    ["SISMEMBER", `$${p}`, "b"],
    ["SISMEMBER", `$${p}`, "a"],
    ["SISMEMBER", `$${p}-none`, "a"],
    ["SCARD", `$${p}`],
    ["SCARD", `$${p}-none`],
    ["SREM", `$${p}`, "b", "c"],
    ["EXISTS", `$${p}`],
    ["SREM", `$${p}-none`, "a"],
    ["SADD", `$${p}-i`, "10", "2", "-5", "1", "2"],
    ["SET", `$${p}-s`, "v"],
    ["SADD", `$${p}-s`, "a"],
    ["SISMEMBER", `$${p}-s`, "a"],
  ],
  "ZADD flags": (p) => [
    ["ZADD", `$${p}`, 1, "a", 2, "b", 3, "c"],
    ["ZADD", `$${p}`, 1, "a", 5, "b", 4, "d"],
    ["ZADD", `$${p}`, "CH", 1, "a", 6, "b", 7, "e"],
    ["ZADD", `$${p}`, "NX", 100, "a", 8, "f"],
    ["ZADD", `$${p}`, "XX", 100, "a", 9, "g"],
    ["ZADD", `$${p}`, "XX", "CH", 101, "a", 9, "g"],
    ["ZADD", `$${p}`, "GT", "CH", 50, "a", 200, "b"],
    ["ZADD", `$${p}`, "LT", "CH", 50, "a", 300, "b", 1, "h"],
    ["ZADD", `$${p}`, "INCR", 2.5, "a"],
    ["ZADD", `$${p}`, "INCR", 2.5, "new"],
    ["ZADD", `$${p}`, "NX", "INCR", 1, "a"],
    ["ZADD", `$${p}`, "XX", "INCR", 1, "zz"],
    ["ZADD", `$${p}`, "GT", "INCR", -1, "a"],
    ["ZADD", `$${p}`, "INCR", 1, "a", 2, "b"],
    ["ZADD", `$${p}`, "NX", "XX", 1, "a"],
    ["ZADD", `$${p}`, "NX", "GT", 1, "a"],
    ["ZADD", `$${p}`, "GT", "LT", 1, "a"],
    ["ZADD", `$${p}`, 1],
    ["ZADD", `$${p}`, 1, "a", 2],
    ["ZADD", `$${p}`, "x", "a"],
    ["ZADD", `$${p}`, "nan", "a"],
    ["ZADD", `$${p}`, "BOGUS", 1, "a"],
    ["ZADD", `$${p}-xx`, "XX", 1, "a"],
    ["EXISTS", `$${p}-xx`],
    ["ZADD", `$${p}`, "-inf", "lo", "+inf", "hi", "inf", "hi2", "-0", "zero", "1e20", "big"],
    ["ZADD", `$${p}`, "0.1", "tenth", "1.5", "h2", "1e-5", "tiny", "123456789012345678", "f"],
    ["ZRANGE", `$${p}`, 0, -1, "WITHSCORES"],
    ["ZADD", `$${p}`, "INCR", "-inf", "hi"],
    ["SET", `$${p}-s`, "v"],
    ["ZADD", `$${p}-s`, 1, "a"],
    ["ZSCORE", `$${p}-s`, "a"],
  ],
  "ZSCORE, ZCARD, ZREM, ZRANK, ZMSCORE": (p) => [
    ["ZADD", `$${p}`, 3, "c", 1, "a", 2, "b", 2, "bb", "-inf", "m"],
    ["ZSCORE", `$${p}`, "a"],
    ["ZSCORE", `$${p}`, "m"],
    ["ZSCORE", `$${p}`, "zz"],
    ["ZSCORE", `$${p}-none`, "a"],
    ["ZCARD", `$${p}`],
    ["ZCARD", `$${p}-none`],
    ["ZREM", `$${p}`, "a", "zz", "b"],
    ["ZREM", `$${p}-none`, "a"],
    ["ZRANGE", `$${p}`, 0, -1],
    ["ZREM", `$${p}`, "c", "bb", "m"],
    ["EXISTS", `$${p}`],
  ],
  "ZRANGE by rank, score, REV, LIMIT": (p) => [
    ["ZADD", `$${p}`, 1, "a", 2, "b", 3, "c", 4, "d", 5, "e", "-inf", "lo", "+inf", "hi", 3, "cc"],
    ["ZRANGE", `$${p}`, 0, -1],
    ["ZRANGE", `$${p}`, 0, -1, "WITHSCORES"],
    ["ZRANGE", `$${p}`, 2, 4, "WITHSCORES"],
    ["ZRANGE", `$${p}`, -3, -1],
    ["ZRANGE", `$${p}`, 5, 2],
    ["ZRANGE", `$${p}`, 0, -1, "REV"],
    ["ZRANGE", `$${p}`, 0, 2, "REV", "WITHSCORES"],
    ["ZRANGE", `$${p}`, 2, 4, "BYSCORE"],
    ["ZRANGE", `$${p}`, "(2", "(4", "BYSCORE", "WITHSCORES"],
    ["ZRANGE", `$${p}`, "-inf", "+inf", "BYSCORE", "LIMIT", 1, 3],
    ["ZRANGE", `$${p}`, "+inf", "-inf", "BYSCORE", "REV", "LIMIT", 0, 2, "WITHSCORES"],
    ["ZRANGE", `$${p}`, 4, 2, "BYSCORE", "REV"],
    ["ZRANGE", `$${p}`, 2, 4, "BYSCORE", "REV"],
    ["ZRANGE", `$${p}`, 0, 1, "LIMIT", 0, 1],
    ["ZRANGE", `$${p}`, 0, -1, "BOGUS"],
    ["ZRANGE", `$${p}`, "a", -1],
    ["ZRANGE", `$${p}`, "x", 5, "BYSCORE"],
    ["ZRANGE", `$${p}-none`, 0, -1],
    ["ZRANGE", `$${p}-none`, 0, -1, "WITHSCORES"],
    ["ZRANGEBYSCORE", `$${p}`, "-inf", "+inf"],
    ["ZRANGEBYSCORE", `$${p}`, "-inf", "+inf", "WITHSCORES"],
    ["ZRANGEBYSCORE", `$${p}`, 2, 3],
    ["ZRANGEBYSCORE", `$${p}`, "(2", 3],
    ["ZRANGEBYSCORE", `$${p}`, 2, "(3"],
    ["ZRANGEBYSCORE", `$${p}`, "(2", "(3"],
    ["ZRANGEBYSCORE", `$${p}`, "(3", "(3"],
    ["ZRANGEBYSCORE", `$${p}`, 3, 3],
    ["ZRANGEBYSCORE", `$${p}`, 5, 1],
    ["ZRANGEBYSCORE", `$${p}`, "-inf", "(-inf"],
    ["ZRANGEBYSCORE", `$${p}`, "-inf", "-inf"],
    ["ZRANGEBYSCORE", `$${p}`, "inf", "+inf", "WITHSCORES"],
    ["ZRANGEBYSCORE", `$${p}`, "(1", "+inf", "LIMIT", 0, 2],
    ["ZRANGEBYSCORE", `$${p}`, "-inf", "+inf", "LIMIT", 2, 2, "WITHSCORES"],
    ["ZRANGEBYSCORE", `$${p}`, "-inf", "+inf", "WITHSCORES", "LIMIT", 6, 100],
    ["ZRANGEBYSCORE", `$${p}`, "-inf", "+inf", "LIMIT", 0, -1],
    ["ZRANGEBYSCORE", `$${p}`, "-inf", "+inf", "LIMIT", -1, 2],
    ["ZRANGEBYSCORE", `$${p}`, "-inf", "+inf", "LIMIT", 100, 2],
    ["ZRANGEBYSCORE", `$${p}`, "-inf", "+inf", "LIMIT", 0, 0],
    ["ZRANGEBYSCORE", `$${p}`, "-inf", "+inf", "LIMIT", 0],
    ["ZRANGEBYSCORE", `$${p}`, "-inf", "+inf", "LIMIT", "x", 1],
    ["ZRANGEBYSCORE", `$${p}`, "abc", "+inf"],
    ["ZRANGEBYSCORE", `$${p}`, "((1", "+inf"],
    ["ZRANGEBYSCORE", `$${p}`, 1, 5, "REV"],
    ["ZRANGEBYSCORE", `$${p}-none`, "-inf", "+inf"],
    ["ZRANGEBYSCORE", `$${p}-none`, "x", "+inf"],
    ["ZREVRANGE", `$${p}`, 0, 2],
    ["ZREVRANGE", `$${p}`, 0, -1, "WITHSCORES"],
    ["ZREVRANGE", `$${p}`, -2, -1],
    ["ZREVRANGE", `$${p}`, 0, 1, "LIMIT", 0, 1],
  ],
  "ZREMRANGEBYSCORE, ZREMRANGEBYRANK, ZPOPMIN": (p) => [
    ["ZADD", `$${p}`, 1, "a", 2, "b", 3, "c", 4, "d", 5, "e", 6, "f", 7, "g"],
    ["ZRANGE", `$${p}`, 0, -1],
    ["ZREMRANGEBYRANK", `$${p}`, 0, 0],
    ["ZREMRANGEBYRANK", `$${p}`, -1, -1],
    ["ZREMRANGEBYRANK", `$${p}`, 5, 10],
    ["ZREMRANGEBYRANK", `$${p}-none`, 0, -1],
    ["ZRANGE", `$${p}`, 0, -1, "WITHSCORES"],
    ["ZADD", `$${p}`, 0.5, "z", 10, "y"],
    ["EXISTS", `$${p}`],
    ["ZADD", `$${p}-r`, 1, "a", 2, "b"],
    ["ZREMRANGEBYRANK", `$${p}-r`, 0, -1],
    ["EXISTS", `$${p}-r`],
    ["SET", `$${p}-s`, "v"],
    ["ZRANGEBYSCORE", `$${p}-s`, 0, 1],
  ],
  "sorted set of 5000 members (queue-like)": (p) => {
    const add: Command = ["ZADD", `$${p}`];
    for (let i = 0; i < 5000; i++) add.push((i * 7919) % 1000, `m${i}`);
    return [
      add,
      ["ZCARD", `$${p}`],
      ["ZRANGEBYSCORE", `$${p}`, "-inf", 10, "WITHSCORES", "LIMIT", 0, 10],
      ["ZRANGE", `$${p}`, 0, 4],
      ["ZREVRANGE", `$${p}`, 0, 4, "WITHSCORES"],
      ["ZREMRANGEBYRANK", `$${p}`, 10, 900],
      ["ZRANGE", `$${p}`, 5, 15, "WITHSCORES"],
      ["ZCARD", `$${p}`],
      ["ZRANGE", `$${p}`, 100, 200, "REV", "WITHSCORES"],
      ["ZRANGEBYSCORE", `$${p}`, "(900", "+inf", "LIMIT", 7, 5],
      ["ZREM", `$${p}`, "m1", "m2", "m3", "m4"],
      ["ZRANGE", `$${p}`, -2, -1, "WITHSCORES"],
    ];
  },
  "wrong types everywhere": (p) => {
    const s = `$${p}-s`, l = `$${p}-l`;
    return [
      ["SET", s, "v"],
      ["RPUSH", l, "a"],
      ["GET", l],
      ["SET", l, "overwrite-ok"],
      ["RPUSH", l, "a"],
      ["HGET", s, "f"],
      ["HINCRBY", s, "f", 1],
      ["HMGET", s, "f"],
      ["LLEN", s],
      ["LRANGE", s, 0, -1],
      ["LPOP", s],
      ["LTRIM", s, 0, 1],
      ["LLEN", l],
      ["SADD", s, "a"],
      ["SCARD", s],
      ["SREM", s, "a"],
      ["ZSCORE", s, "a"],
      ["ZRANGE", s, 0, -1],
      ["ZCARD", s],
      ["ZREM", s, "a"],
      ["ZREMRANGEBYRANK", s, 0, 1],
      ["SET", l, "x", "GET"],
      ["LRANGE", l, 0, -1],
    ];
  },
  "arity and unknown commands": (p) => [
    ["NOSUCHCOMMAND", "a", "b"],
    ["nosuch"],
    ["GET"],
    ["GET", `$${p}`, "extra"],
    ["HGET", `$${p}`],
    ["ZADD", `$${p}`, 1],
    ["LPUSH", `$${p}`],
    ["TTL"],
    ["get", `$${p}`],
    ["zAdD", `$${p}`, "nx", 1, "a"],
    ["zrange", `$${p}`, 0, -1, "withscores"],
  ],
  "SCAN with MATCH": (p) => [
    ["HSET", `$${p}:h`, "f", "v"],
    { scan: ["MATCH", `$${p}:*`, "COUNT", 10000] },
    { scan: ["MATCH", `$${p}:a*`, "COUNT", 10000] },
    { scan: ["MATCH", `$${p}:?1`, "COUNT", 10000] },
    { scan: ["MATCH", `$${p}:[ab]1`, "COUNT", 10000] },
    { scan: ["MATCH", `$${p}:[^a]1`, "COUNT", 10000] },
    { scan: ["MATCH", `$${p}:[a-b]*`, "COUNT", 10000] },
    { scan: ["MATCH", `$${p}:c\\[x\\]`, "COUNT", 10000] },
    { scan: ["MATCH", `$${p}:d\\?`, "COUNT", 10000] },
    { scan: ["MATCH", `$${p}:zz*`, "COUNT", 10000] },
    { scan: ["MATCH", `$${p}:a*`, "COUNT", 10000] },
    { scan: ["MATCH", `$${p}:*`, "COUNT", 10000, "TYPE", "hash"] },
    ["SCAN", 0, "COUNT", 0],
    ["SCAN", 0, "MATCH"],
    ["SCAN", 0, "BOGUS", 1],
    ["SCAN", "abc"],
  ],
  "MULTI": (p) => [
    { multi: [["SET", `$${p}`, "1"], ["INCR", `$${p}`], ["GET", `$${p}`], ["GET", `$${p}-none`]] },
    { multi: [] },
    {
      multi: [
        ["HSET", `$${p}-h`, "b", "1", "10", "2"],
        ["HGETALL", `$${p}-h`],
        ["ZADD", `$${p}-z`, 1.5, "m", "-inf", "n"],
        ["ZSCORE", `$${p}-z`, "m"],
        ["ZRANGE", `$${p}-z`, 0, -1, "WITHSCORES"],
        ["LPUSH", `$${p}-l`, "a", "b"],
        ["LRANGE", `$${p}-l`, 0, -1],
      ],
    },
    {
      multi: [["SET", `$${p}-x`, "1"], ["INCR", `$${p}-h`], ["HGET", `$${p}-x`, "f"], [
        "GET",
        `$${p}-x`,
      ]],
    },
    ["GET", `$${p}-x`],
    { multi: [["SET", `$${p}-y`, "1"], ["SET", `$${p}-y`, "2", "BOGUS"], ["GET", `$${p}-y`]] },
    { multi: [["SET", `$${p}-q`, "1"], ["ZADD", `$${p}-q`]] },
    ["GET", `$${p}-q`],
    { multi: [["SET", `$${p}-q`, "1"], ["NOSUCH", `$${p}-q`]] },
    ["GET", `$${p}-q`],
  ],
  "pipeline": (p) => [
    {
      pipeline: [["SET", `$${p}`, "1"], ["INCR", `$${p}`], ["ZADD", `$${p}-z`, 2, "a"], [
        "ZSCORE",
        `$${p}-z`,
        "a",
      ]],
    },
    { pipeline: [["INCR", `$${p}-z`], ["SET", `$${p}-after`, "1"], ["HGET", `$${p}`, "f"]] },
    ["GET", `$${p}-after`],
    { pipeline: [] },
  ],
  "scripts": (p) => [
    { eval: incr, keys: [`${p}-n`], args: [5] },
    { eval: incr, keys: [`${p}-n`], args: ["-2"] },
    ["ZADD", `$${p}-due`, 10, "t1", 20, "t2", 30, "t3", "-inf", "t0"],
    { eval: claim, keys: [`${p}-due`, `${p}-state`], args: [20, 2] },
    { eval: claim, keys: [`${p}-due`, `${p}-state`], args: [25, 10] },
    { eval: claim, keys: [`${p}-due`, `${p}-state`], args: [25, 10] },
    ["HGETALL", `$${p}-state`],
    ["ZRANGE", `$${p}-due`, 0, -1, "WITHSCORES"],
    ["ZADD", `$${p}-z`, 0.1, "a", "+inf", "b", 1e20, "c", 2.5, "d"],
    { eval: inspect, keys: [`${p}-z`], args: ["a"] },
    { eval: inspect, keys: [`${p}-z`], args: ["b"] },
    { eval: inspect, keys: [`${p}-z`], args: ["missing"] },
    { eval: scoreNumber, keys: [`${p}-z`], args: ["d"] },
    { eval: getOrNil, keys: [`${p}-none`], args: [] },
    ["SET", `$${p}-s`, "v"],
    { eval: getOrNil, keys: [`${p}-s`], args: [] },
    { eval: failing, keys: [`${p}-s`], args: [] },
    { eval: errorReply, keys: [], args: [] },
    ["HSET", `$${p}-h`, "b", "1", "10", "2"],
    { eval: hashScript, keys: [`${p}-h`], args: [] },
    { eval: hashScript, keys: [`${p}-h`], args: [] },
    { eval: setAndTtl, keys: [`${p}-t`], args: [] },
  ],
};

async function scanEvery(store: Store, args: Command): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, page] = await store.command(["SCAN", cursor, ...args]) as [string, string[]];
    keys.push(...page);
    cursor = String(next);
  } while (cursor !== "0");
  return keys.sort();
}

let redis: RedisStore;
/** How far the embedded store's clock is ahead of the wall clock (see `elapse`). */
let skipped = 0;
const memory = new MemoryStore({ clock: () => Date.now() + skipped });

/**
 * Lets `ms` pass for a store: the embedded store's clock jumps ahead; Redis's clock cannot be
 * moved, so there the time really passes.
 */
async function elapse(store: Store, ms: number): Promise<void> {
  if (store === memory) skipped += ms;
  else await sleep(ms);
}

test.before(async () => {
  redis = await readyRedis(REDIS_URL);
});

test.after(async () => {
  const reply = await redis.command(["KEYS", `${PREFIX}*`]) as string[];
  if (reply.length) await redis.command(["UNLINK", ...reply]);
  await Promise.all([redis.close(), memory.close()]);
});

let caseNo = 0;
for (const [name, build] of Object.entries(CASES)) {
  const p = `c${caseNo++}`;
  test(`${name}: RedisStore and MemoryStore reply the same`, async () => {
    const steps = build(p);
    const [fromRedis, fromMemory] = [await run(redis, steps), await run(memory, steps)];
    for (let i = 0; i < steps.length; i++) {
      assert.equal(
        fromMemory[i],
        fromRedis[i],
        `step ${i}: ${JSON.stringify(steps[i])}\n  redis:  ${
          JSON.stringify(fromRedis[i])
        }\n  memory: ${JSON.stringify(fromMemory[i])}`,
      );
    }
  });
}

test("every emulated command is compared with Redis by some case", () => {
  // TIME and PUBLISH have tests of their own below.
  const seen = new Set<string>(["TIME", "PUBLISH"]);
  const add = (c: Command) => seen.add(String(c[0]).toUpperCase());
  for (const build of Object.values(CASES)) {
    for (const step of build("x")) {
      if (Array.isArray(step)) add(step);
      else if ("multi" in step) step.multi.forEach(add);
      else if ("pipeline" in step) step.pipeline.forEach(add);
      else if ("unordered" in step) add(step.unordered);
      else if ("map" in step) add(step.map);
      else if ("scan" in step) seen.add("SCAN");
      else if ("eval" in step) {
        for (const [, name] of step.eval.lua.matchAll(/redis\.p?call\("(\w+)"/g)) seen.add(name);
      }
    }
  }
  assert.equal(EMULATED_COMMANDS.filter((c) => !seen.has(c)), []);
});

test("TIME answers [seconds, microseconds] as strings on both", async () => {
  for (const store of [redis, memory]) {
    const [s, us] = await store.command(["TIME"]) as string[];
    assert.type(s, "string");
    assert.type(us, "string");
    assert.ok(Math.abs(Number(s) - Date.now() / 1000) < 5);
    assert.ok(Number(us) >= 0 && Number(us) < 1e6);
  }
});

test("PUBLISH reaches subscribers in order on both, from commands, MULTI and scripts", async () => {
  const publishScript = defineScript({
    name: "publish",
    lua: `redis.call("PUBLISH", KEYS[1], "s1") return redis.call("PUBLISH", KEYS[1], "s2")`,
  });
  const results: unknown[] = [];
  for (const store of [redis, memory]) {
    const channel = k(`ch-${store.kind}`);
    const got: string[] = [];
    const replies: unknown[] = [await store.command(["PUBLISH", channel, "nobody"])];
    const off = await store.subscribe(channel, (m) => got.push(m));
    replies.push(await store.command(["PUBLISH", channel, "c1"]));
    replies.push(await store.multi([["PUBLISH", channel, "m1"], ["PUBLISH", channel, "m2"]]));
    replies.push(await store.eval(publishScript, [channel], []));
    await waitFor(() => got.length >= 5, 3000, "five messages").catch(() => {});
    await off();
    replies.push(await store.command(["PUBLISH", channel, "after"]));
    // Nothing can arrive once unsubscribed: the server has no subscriber left to push it to.
    assert.is(replies.at(-1), 0, `${store.kind}: subscribers of "after"`);
    results.push({ replies, got });
  }
  assert.equal(results[1], results[0]);
  assert.equal((results[0] as { got: string[] }).got, ["c1", "m1", "m2", "s1", "s2"]);
});

test.run();
