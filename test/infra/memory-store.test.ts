import { test } from "uvu";
import * as assert from "uvu/assert";
import { MemoryStore, MultiError } from "../../src/infra/memory-store.ts";
import { defineScript, toHash, UnavailableError } from "../../src/infra/store.ts";
import { waitFor } from "../helpers.ts";

const stores: MemoryStore[] = [];
function store(options?: ConstructorParameters<typeof MemoryStore>[0]): MemoryStore {
  const s = new MemoryStore(options);
  stores.push(s);
  return s;
}
async function rejects(fn: () => Promise<unknown>, expected: RegExp | ((e: unknown) => boolean)) {
  const err = await fn().then(() => undefined, (e) => e ?? "rejected");
  assert.ok(err, "expected a rejection");
  if (expected instanceof RegExp) assert.match((err as Error).message, expected);
  else assert.ok(expected(err), `unexpected rejection: ${err}`);
}

test.after(async () => {
  await Promise.all(stores.map((s) => s.close()));
});

test("command() answers strings, integers and nil like Redis", async () => {
  const s = store();
  assert.is(await s.command(["SET", "k", "v"]), "OK");
  assert.is(await s.command(["GET", "k"]), "v");
  assert.is(await s.command(["GET", "missing"]), null);
  assert.is(await s.command(["INCR", "n"]), 1);
  assert.is(await s.command(["INCRBY", "n", 41]), 42);
});

test("command() rejects with Redis errors", async () => {
  const s = store();
  await s.command(["SET", "k", "v"]);
  await rejects(() => s.command(["LPUSH", "k", "x"]), /^WRONGTYPE/);
  await rejects(() => s.command(["INCR", "k"]), /ERR value is not an integer/);
  await rejects(() => s.command(["NOPE"]), /ERR unknown command 'NOPE'/);
  await rejects(() => s.command(["GET"]), /ERR wrong number of arguments for 'get'/);
});

test("HGETALL comes back flat, readable with toHash", async () => {
  const s = store();
  await s.command(["HSET", "h", "a", "1", "b", "2"]);
  assert.equal(toHash(await s.command(["HGETALL", "h"])), { a: "1", b: "2" });
  assert.equal(await s.command(["HGETALL", "none"]), []);
});

test("sorted set scores are strings by default (RESP2) and numbers with resp 3", async () => {
  const s3 = store({ resp: 3 });
  const s2 = store();
  for (const s of [s3, s2]) await s.command(["ZADD", "z", "1.5", "a", "-inf", "b"]);
  assert.equal(await s3.command(["ZRANGE", "z", 0, -1, "WITHSCORES"]), [["b", -Infinity], [
    "a",
    1.5,
  ]]);
  assert.equal(await s2.command(["ZRANGE", "z", 0, -1, "WITHSCORES"]), ["b", "-inf", "a", "1.5"]);
  assert.is(await s3.command(["ZSCORE", "z", "a"]), 1.5);
  assert.is(await s2.command(["ZSCORE", "z", "a"]), "1.5");
});

test("keys with PX expire on the store's clock", async () => {
  let now = Date.now();
  const s = store({ clock: () => now });
  await s.command(["SET", "k", "v", "PX", 30]);
  now += 29;
  assert.is(await s.command(["EXISTS", "k"]), 1);
  now += 1;
  assert.is(await s.command(["GET", "k"]), null);
  assert.is(await s.command(["TTL", "k"]), -2);
});

test("multi() runs atomically and rejects with MultiError when a command fails", async () => {
  const s = store();
  assert.equal(await s.multi([["SET", "k", "1"], ["INCR", "k"], ["GET", "k"]]), ["OK", 2, "2"]);
  const err = await s.multi([["SET", "s", "x"], ["INCR", "s"], ["GET", "s"]]).catch((e) => e);
  assert.instance(err, MultiError);
  assert.equal(err.errorIndexes, [1]);
  assert.is(err.replies[2], "x");
});

test("multi() runs nothing when a command cannot be queued", async () => {
  const s = store();
  await rejects(() => s.multi([["SET", "k", "1"], ["GET"]]), /wrong number of arguments/);
  assert.is(await s.command(["GET", "k"]), null);
});

test("eval() runs the Lua with RESP2 replies from redis.call", async () => {
  const s = store();
  const script = defineScript({
    name: "zscore",
    lua: `redis.call("ZADD", KEYS[1], "2.5", ARGV[1])
return {redis.call("ZSCORE", KEYS[1], ARGV[1]), redis.call("PING").ok}`,
  });
  assert.equal(await s.eval(script, ["z"], ["m"]), ["2.5", "PONG"]);
});

test("eval() reads TIME from the store's clock, frozen for the script", async () => {
  let now = 1_700_000_000_123.456;
  const s = store({ clock: () => now });
  const script = defineScript({
    name: "time",
    lua: `local t = redis.call("TIME")
redis.call("SET", KEYS[1], "v", "PX", 1000)
return {t[1], t[2], redis.call("PTTL", KEYS[1])}`,
  });
  assert.equal(await s.eval(script, ["k"], []), ["1700000000", "123456", 1000]);
  now += 999;
  assert.is(await s.command(["GET", "k"]), "v");
  now += 1;
  assert.is(await s.command(["GET", "k"]), null);
});

test("eval() rejects when the script fails", async () => {
  const s = store();
  await s.command(["SET", "k", "v"]);
  const script = defineScript({ name: "bad", lua: `return redis.call("LPUSH", KEYS[1], "x")` });
  await rejects(() => s.eval(script, ["k"], []), /Script "bad" failed: WRONGTYPE/);
});

test("subscribe() gets PUBLISH from commands and scripts after the script ends, in order", async () => {
  const s = store();
  const got: string[] = [];
  const off = await s.subscribe("ch", (m) => got.push(m));
  const script = defineScript({
    name: "pub",
    lua: `redis.call("PUBLISH", "ch", "b") redis.call("PUBLISH", "ch", "c") return 1`,
  });
  assert.is(await s.command(["PUBLISH", "ch", "a"]), 1);
  await s.eval(script, [], []);
  assert.equal(got, []);
  await s.multi([["PUBLISH", "ch", "d"]]);
  await waitFor(() => got.length >= 4, 2000, "four messages");
  assert.equal(got, ["a", "b", "c", "d"]);
  await off();
  assert.is(await s.command(["PUBLISH", "ch", "e"]), 0);
});

test("a command outside the emulated set fails everywhere with an error naming it", async () => {
  const s = store();
  const named = /ERR unknown command 'INCRBYFLOAT' \(not emulated by the embedded store\)/;
  await rejects(() => s.command(["INCRBYFLOAT", "k", "1.5"]), named);
  await rejects(() => s.multi([["SET", "k", "1"], ["INCRBYFLOAT", "k", "1.5"]]), named);
  assert.is(await s.command(["GET", "k"]), null);
  await rejects(() => s.pipeline([["INCRBYFLOAT", "k", "1.5"]]), named);
  const script = defineScript({ name: "float", lua: `return redis.call("INCRBYFLOAT", "k", "1")` });
  await rejects(() => s.eval(script, [], []), named);
  const guarded = defineScript({ name: "guarded", lua: `return redis.pcall("TYPE", "k").err` });
  assert.match(String(await s.eval(guarded, [], [])), /unknown command 'TYPE' \(not emulated/);
});

test("pipeline() runs every command and rejects with the first error", async () => {
  const s = store();
  await s.command(["SET", "s", "x"]);
  await rejects(
    () => s.pipeline([["INCR", "s"], ["SET", "after", "1"], ["LPUSH", "s", "x"]]),
    /not an integer/,
  );
  assert.is(await s.command(["GET", "after"]), "1");
  assert.equal(await s.pipeline([["INCR", "n"], ["INCR", "n"]]), [1, 2]);
});

test("ZRANGE, ZREM and ZRANGEBYSCORE serve a 100k-member queue in order", async () => {
  const s = store();
  const add: (string | number)[] = ["ZADD", "q"];
  const byScore = new Map<number, string>();
  for (let i = 0; i < 100_000; i++) {
    add.push((i * 7919) % 100_000, `m${i}`);
    byScore.set((i * 7919) % 100_000, `m${i}`);
  }
  assert.is(await s.command(add), 100_000);
  assert.equal(await s.command(["ZRANGEBYSCORE", "q", "(10", 12, "WITHSCORES"]), [
    byScore.get(11),
    "11",
    byScore.get(12),
    "12",
  ]);
  let last = -1;
  for (let i = 0; i < 1000; i++) {
    const [member, score] = await s.command(["ZRANGE", "q", 0, 0, "WITHSCORES"]) as string[];
    assert.is(await s.command(["ZREM", "q", member]), 1);
    assert.ok(Number(score) > last);
    last = Number(score);
  }
  assert.is(await s.command(["ZCARD", "q"]), 99_000);
});

test("eval() converts the return value as Redis does", async () => {
  const s = store();
  const script = defineScript({
    name: "shape",
    lua: `return {1, "a", {2.9, -2.9}, true, false, "after false", nil, "after nil"}`,
  });
  assert.equal(await s.eval(script, [], []), [1, "a", [2, -2], 1, null, "after false"]);
  const none = defineScript({ name: "none", lua: "return nil" });
  assert.is(await s.eval(none, [], []), null);
  const status = defineScript({ name: "status", lua: `return redis.status_reply("FINE")` });
  assert.is(await s.eval(status, [], []), "FINE");
  const error = defineScript({ name: "error", lua: `return redis.error_reply("NOPE not now")` });
  await rejects(() => s.eval(error, [], []), /Script "error" failed: NOPE not now/);
});

test("eval() formats numbers as Lua 5.1 does", async () => {
  const s = store();
  const script = defineScript({
    name: "numbers",
    lua: `return {3.0 .. "", tostring(10 / 2), tostring(1 / 3), tostring(2 ^ 53), unpack({"u"})}`,
  });
  assert.equal(await s.eval(script, [], []), [
    "3",
    "5",
    "0.33333333333333",
    "9.007199254741e+15",
    "u",
  ]);
});

test("the expiry sweep does not keep the process alive", async () => {
  const code = `import { MemoryStore } from "${new URL(
    "../../src/infra/memory-store.ts",
    import.meta.url,
  )}";
    const s = new MemoryStore(); await s.command(["SET", "k", "v", "EX", 100]); console.log("done");`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  const out = await child.output();
  clearTimeout(timer);
  assert.is(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.match(new TextDecoder().decode(out.stdout), "done");
});

test("close() makes commands fail with UnavailableError", async () => {
  const s = store();
  await s.close();
  assert.equal(await s.check(), { ok: false, detail: "store closed" });
  await rejects(() => s.command(["PING"]), (e: unknown) => e instanceof UnavailableError);
});

test.run();
