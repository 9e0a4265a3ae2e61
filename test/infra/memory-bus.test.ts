import { test } from "uvu";
import * as assert from "uvu/assert";
import { MemoryBus, murmur2 } from "../../src/infra/memory-bus.ts";
import { UnavailableError } from "../../src/infra/store.ts";
import type { BusRecord, TopicPartition } from "../../src/infra/bus-consumer.ts";
import { waitFor } from "../helpers.ts";

const enc = new TextEncoder();

test("murmur2() matches Kafka's reference values", () => {
  assert.is(murmur2(enc.encode("21")), -973932308);
  assert.is(murmur2(enc.encode("foobar")), -790332482);
  assert.is(murmur2(enc.encode("a-little-bit-long-string")), -985981536);
  assert.is(murmur2(enc.encode("a-little-bit-longer-string")), -1486304829);
  assert.is(murmur2(enc.encode("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8")), -58897971);
  assert.is(murmur2(enc.encode("abc")), 479470107);
});

test("publish() puts one key on one partition, in order, with growing offsets", async () => {
  const bus = new MemoryBus();
  await bus.ensureTopics(["t"], 4);
  for (let i = 0; i < 20; i++) await bus.publish("t", [{ key: `k${i % 5}`, value: String(i) }]);
  const all = bus.readAll("t");
  assert.is(all.length, 20);
  for (let k = 0; k < 5; k++) {
    const mine = all.filter((r) => r.key === `k${k}`);
    assert.is(new Set(mine.map((r) => r.partition)).size, 1);
    const expected = (murmur2(enc.encode(`k${k}`)) & 0x7fffffff) % 4;
    assert.is(mine[0].partition, expected);
    assert.equal(mine.map((r) => Number(r.value)), [k, k + 5, k + 10, k + 15]);
  }
  for (let p = 0; p < 4; p++) {
    assert.equal(bus.read("t", p).map((r) => r.offset), bus.read("t", p).map((_, i) => i));
  }
  await bus.close();
});

test("publish() spreads messages without a key round-robin and keeps headers", async () => {
  const bus = new MemoryBus();
  await bus.publish(
    "t",
    [1, 2, 3, 4, 5, 6].map((i) => ({ value: String(i), headers: { h: "v" } })),
  );
  assert.equal([0, 1, 2].map((p) => bus.read("t", p).length), [2, 2, 2]);
  assert.is(bus.read("t", 0)[0].headers.h, "v");
  await bus.close();
});

test("a retention bound drops the oldest records but keeps offsets", async () => {
  const bus = new MemoryBus({ defaultPartitions: 1, retainRecords: 3 });
  for (let i = 0; i < 5; i++) await bus.publish("t", [{ value: String(i) }]);
  assert.equal(bus.read("t", 0).map((r) => [r.offset, r.value]), [[2, "2"], [3, "3"], [4, "4"]]);
  await bus.close();
});

function member(bus: MemoryBus, groupId: string, sink: BusRecord[], opts = {}) {
  let assigned: TopicPartition[] = [];
  const c = bus.consumer({
    groupId,
    topics: ["t"],
    onRecords: (r) => sink.push(...r),
    onAssignment: (tps) => (assigned = tps),
    ...opts,
  });
  return { c, assigned: () => assigned };
}

test("members of a group split the partitions; a member leaving hands its uncommitted records over", async () => {
  const bus = new MemoryBus();
  await bus.ensureTopics(["t"], 4);
  const a: BusRecord[] = [], b: BusRecord[] = [];
  const ma = member(bus, "g", a);
  await ma.c.start();
  assert.is(ma.assigned().length, 4);
  const mb = member(bus, "g", b);
  await mb.c.start();
  assert.is(ma.assigned().length, 2);
  assert.is(mb.assigned().length, 2);
  await bus.publish(
    "t",
    Array.from({ length: 40 }, (_, i) => ({ key: `k${i}`, value: String(i) })),
  );
  await waitFor(() => a.length + b.length === 40, 2000, "40 records");
  // b commits what it read; a commits nothing and leaves: b receives a's partitions from the
  // start and its own from its committed offsets (nothing).
  const next = (rs: BusRecord[], p: number) =>
    Math.max(...rs.filter((r) => r.partition === p).map((r) => r.offset)) + 1;
  await mb.c.commit(mb.assigned().map((tp) => ({ ...tp, offset: next(b, tp.partition) })));
  const aPartitions = new Set(a.map((r) => r.partition));
  assert.ok(a.length > 0 && b.length > 0);
  await ma.c.stop();
  assert.is(mb.assigned().length, 4);
  await waitFor(() => b.length === 40, 2000, "a's records redelivered to b");
  const redelivered = b.slice(40 - a.length);
  assert.ok(redelivered.every((r) => aPartitions.has(r.partition)));
  await mb.c.idle();
  assert.is(b.length, 40);
  await bus.close();
});

test("a new member starts after the committed offsets; commit() skips partitions it does not own", async () => {
  const bus = new MemoryBus();
  await bus.ensureTopics(["t"], 2);
  await bus.publish(
    "t",
    Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, value: String(i) })),
  );
  const seen: BusRecord[] = [];
  const m1 = member(bus, "g", seen);
  await m1.c.start();
  await waitFor(() => seen.length === 10, 2000, "10 records");
  const committed = await m1.c.commit([
    { topic: "t", partition: 0, offset: bus.read("t", 0).length },
    { topic: "t", partition: 1, offset: bus.read("t", 1).length },
    { topic: "t", partition: 7, offset: 3 },
  ]);
  assert.is(committed.length, 2);
  await m1.c.stop();
  await bus.publish("t", [{ key: "late", value: "late" }]);
  const again: BusRecord[] = [];
  const m2 = member(bus, "g", again);
  await m2.c.start();
  await waitFor(() => again.length === 1, 2000, "only the new record");
  assert.is(again[0].value, "late");
  await bus.close();
});

test("crash() keeps the partitions away from others until the session times out", async () => {
  const bus = new MemoryBus();
  await bus.ensureTopics(["t"], 2);
  const a: BusRecord[] = [], b: BusRecord[] = [];
  const ma = member(bus, "g", a, { sessionTimeoutMs: 200 });
  const mb = member(bus, "g", b, { sessionTimeoutMs: 200 });
  await ma.c.start();
  await mb.c.start();
  assert.is(mb.assigned().length, 1);
  ma.c.crash();
  assert.is(ma.c.inGroup(), false);
  assert.is(mb.assigned().length, 1);
  await waitFor(() => mb.assigned().length === 2, 2000, "b owns both after the session timeout");
  await bus.close();
});

test("pause() stops delivery of a topic and resume() continues where it was", async () => {
  const bus = new MemoryBus();
  const seen: BusRecord[] = [];
  const m = member(bus, "g", seen);
  await m.c.start();
  m.c.pause(["t"]);
  await bus.publish("t", [{ key: "a", value: "1" }]);
  await m.c.idle();
  assert.is(seen.length, 0);
  m.c.resume(["t"]);
  await waitFor(() => seen.length === 1, 2000, "delivery after resume");
  assert.equal(m.c.highWatermarks().reduce((n, hw) => n + hw.offset, 0), 1);
  assert.equal(await m.c.check(), { ok: true });
  await m.c.stop();
  assert.is((await m.c.check()).ok, false);
  await bus.close();
});

test("idle() settles only once every owned partition is read to its end; at once when stopped", async () => {
  const bus = new MemoryBus();
  const seen: BusRecord[] = [];
  const m = member(bus, "g", seen);
  await m.c.start();
  // More than one pass delivers (a pass takes at most 1000 records of a partition).
  await bus.publish(
    "t",
    Array.from({ length: 2500 }, (_, i) => ({ key: "one", value: String(i) })),
  );
  await m.c.idle();
  assert.is(seen.length, 2500);
  await m.c.stop();
  await m.c.idle();
  await bus.close();
});

test("fromBeginning: false starts a new group at the end", async () => {
  const bus = new MemoryBus();
  await bus.publish("t", [{ key: "old", value: "old" }]);
  const seen: BusRecord[] = [];
  const m = member(bus, "g", seen, { fromBeginning: false });
  await m.c.start();
  await bus.publish("t", [{ key: "new", value: "new" }]);
  await waitFor(() => seen.length === 1, 2000, "the new record");
  assert.is(seen[0].value, "new");
  await bus.close();
});

test("close() stops consumers and later publishes fail", async () => {
  const bus = new MemoryBus();
  const m = member(bus, "g", []);
  await m.c.start();
  await bus.close();
  assert.is(m.c.inGroup(), false);
  try {
    await bus.publish("t", [{ value: "x" }]);
    assert.unreachable("publish after close");
  } catch (err) {
    assert.match(String(err), /closed/);
  }
});

test("publish() refuses with UnavailableError while the bus holds maxBytes; consuming frees it", async () => {
  const bus = new MemoryBus({ defaultPartitions: 2, maxBytes: 10_000 });
  const kib = "x".repeat(1000);
  let accepted = 0;
  let refused: unknown;
  for (let i = 0; i < 20 && !refused; i++) {
    await bus.publish("t", [{ key: `k${i}`, value: kib }]).then(
      () => accepted++,
      (e) => (refused = e),
    );
  }
  assert.instance(refused, UnavailableError);
  assert.is((refused as UnavailableError).dependency, "kafka");
  assert.match((refused as Error).message, /embedded bus is full/);
  assert.ok(accepted >= 9 && accepted <= 10, `${accepted} accepted`);
  assert.ok(bus.retainedBytes <= 10_000);
  // A batch is all or none.
  assert.is(bus.readAll("t").length, accepted);
  // The bound is over every topic.
  await bus.publish("other", [{ value: kib }]).then(() => assert.unreachable(), () => {});
  // A group that reads and commits gives the memory back.
  const sink: BusRecord[] = [];
  const m = member(bus, "g", sink);
  await m.c.start();
  await waitFor(() => sink.length === accepted, 2000, "every record");
  const next = (p: number) =>
    Math.max(-1, ...sink.filter((r) => r.partition === p).map((r) => r.offset)) + 1;
  await m.c.commit(m.assigned().map((tp) => ({ ...tp, offset: next(tp.partition) })));
  assert.is(bus.retainedBytes, 0);
  await bus.publish("t", [{ key: "again", value: kib }]);
  await waitFor(() => sink.length === accepted + 1, 2000, "the new record");
  await bus.close();
});

test("the byte bound keeps what a reading group has not committed", async () => {
  const bus = new MemoryBus({ defaultPartitions: 1, maxBytes: 5_000 });
  const kib = "y".repeat(1000);
  const fast: BusRecord[] = [];
  const slow: BusRecord[] = [];
  const a = member(bus, "fast", fast);
  const b = member(bus, "slow", slow);
  await a.c.start();
  await b.c.start();
  for (let i = 0; i < 4; i++) await bus.publish("t", [{ value: kib }]);
  await waitFor(() => fast.length === 4 && slow.length === 4, 2000, "both read");
  await a.c.commit([{ topic: "t", partition: 0, offset: 4 }]);
  await b.c.commit([{ topic: "t", partition: 0, offset: 2 }]);
  await bus.publish("t", [{ value: kib }]).catch(() => {});
  // Only what both groups committed (offsets 0 and 1) is gone.
  assert.equal(bus.read("t", 0).map((r) => r.offset)[0], 2);
  await bus.close();
});

test.run();
