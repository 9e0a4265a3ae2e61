import { test } from "uvu";
import * as assert from "uvu/assert";
import { KafkaBus } from "../../src/infra/kafka.ts";
import { UnavailableError } from "../../src/infra/store.ts";
import { createLogger } from "../../src/log.ts";
import RequestQueue from "kafkajs/src/network/requestQueue/index.js";
import {
  cleanup,
  deleteTopicsLater,
  freePort,
  KAFKA_BROKERS,
  onCleanup,
  unique,
  waitFor,
} from "../helpers.ts";

test.after(cleanup);

const log = createLogger("error");

function bus(brokers = KAFKA_BROKERS.split(","), logger = log): KafkaBus {
  const b = new KafkaBus(brokers, logger, { clientId: unique("test") });
  onCleanup(() => b.close());
  return b;
}

test("check() is ok on a running broker", async () => {
  assert.equal(await bus().check(), { ok: true });
});

test("check() fails within 2 s and publish() throws UnavailableError within 6 s when no broker answers", async () => {
  const b = bus([`127.0.0.1:${freePort()}`]);
  let t0 = Date.now();
  const check = await b.check();
  assert.is(check.ok, false);
  assert.ok(Date.now() - t0 < 2_000, `check took ${Date.now() - t0} ms`);
  t0 = Date.now();
  try {
    await b.publish("t", [{ key: "a", value: "1" }]);
    assert.unreachable("publish succeeded");
  } catch (err) {
    assert.instance(err, UnavailableError);
    assert.is((err as UnavailableError).dependency, "kafka");
  }
  assert.ok(Date.now() - t0 < 6_000, `publish took ${Date.now() - t0} ms`);
});

test("a consumer with no broker to reach is not in its group and stops at once", async () => {
  const broker = `127.0.0.1:${freePort()}`;
  const lines: string[] = [];
  const b = bus([broker], createLogger("warn", {}, (line) => lines.push(line)));
  const c = b.consumer({ groupId: unique("g"), topics: ["t"], onRecords: () => {} });
  await c.start();
  // It has tried, and failed, to reach the broker: the refused connection is in its log.
  await waitFor(
    () => lines.some((l) => l.includes(`ECONNREFUSED ${broker}`)),
    10_000,
    "a refused connection",
  );
  assert.is((await c.check()).ok, false);
  const t0 = Date.now();
  await c.stop();
  assert.ok(Date.now() - t0 < 2_000, `stop took ${Date.now() - t0} ms`);
});

test("an idle connection does not spin: kafkajs's request queue checks only when a request waits", async () => {
  const b = bus();
  const topic = unique("idle");
  deleteTopicsLater([topic]);
  await b.publish(topic, [{ key: "a", value: "1" }]);
  const proto = (RequestQueue as unknown as { prototype: { checkPendingRequests(): void } })
    .prototype;
  const original = proto.checkPendingRequests;
  let checks = 0;
  proto.checkPendingRequests = function (this: unknown) {
    checks++;
    return original.call(this);
  };
  try {
    await new Promise((r) => setTimeout(r, 1000));
  } finally {
    proto.checkPendingRequests = original;
  }
  // kafkajs 2.2.4 on its own re-arms a 1 ms timer per connection: hundreds of checks a second.
  assert.ok(checks < 20, `${checks} checks of the request queue in 1 s of idling`);
  await b.publish(topic, [{ key: "b", value: "2" }]);
});

test("ensureTopics() creates topics with the partition count and is idempotent", async () => {
  const b = bus();
  const topic = unique("t-kafka");
  deleteTopicsLater([topic]);
  await b.ensureTopics([topic], 5);
  await b.ensureTopics([topic], 5);
  const assigned: number[] = [];
  const c = b.consumer({
    groupId: unique("g"),
    topics: [topic],
    onRecords: () => {},
    onAssignment: (tps) => assigned.push(...tps.map((tp) => tp.partition)),
  });
  await c.start();
  await waitFor(() => assigned.length === 5, 20_000, "5 partitions assigned");
  await c.stop();
});

test("publish() puts a key on the same partition as the embedded bus would", async () => {
  const { MemoryBus } = await import("../../src/infra/memory-bus.ts");
  const b = bus();
  const mem = new MemoryBus();
  const topic = unique("t-kafka");
  deleteTopicsLater([topic]);
  await b.ensureTopics([topic], 3);
  await mem.ensureTopics([topic], 3);
  const keys = Array.from({ length: 12 }, (_, i) => `key-${i}`);
  await b.publish(topic, keys.map((key) => ({ key, value: key })));
  await mem.publish(topic, keys.map((key) => ({ key, value: key })));
  const seen = new Map<string, number>();
  const c = b.consumer({
    groupId: unique("g"),
    topics: [topic],
    onRecords: (rs) => rs.forEach((r) => seen.set(r.key!, r.partition)),
  });
  await c.start();
  await waitFor(() => seen.size === 12, 20_000, "12 records");
  for (const r of mem.readAll(topic)) assert.is(seen.get(r.key!), r.partition, r.key!);
  await c.stop();
  await mem.close();
});

test.run();
