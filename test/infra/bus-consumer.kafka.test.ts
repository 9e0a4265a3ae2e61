/**
 * The group-consumer port, the same tests on the embedded bus and on the real broker.
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Bus } from "../../src/infra/bus.ts";
import type { BusRecord, GroupConsumer, TopicPartition } from "../../src/infra/bus-consumer.ts";
import { KafkaBus } from "../../src/infra/kafka.ts";
import { MemoryBus } from "../../src/infra/memory-bus.ts";
import { createLogger } from "../../src/log.ts";
import {
  busBackends,
  cleanup,
  deleteTopicsLater,
  KAFKA_BROKERS,
  onCleanup,
  unique,
  waitFor,
} from "../helpers.ts";

const log = createLogger((Deno.env.get("TEST_LOG_LEVEL") ?? "error") as "error");

function newBus(kind: "memory" | "kafka"): Bus {
  const bus = kind === "memory"
    ? new MemoryBus()
    : new KafkaBus(KAFKA_BROKERS.split(","), log, { clientId: unique("test") });
  onCleanup(() => bus.close());
  return bus;
}

interface Member {
  consumer: GroupConsumer;
  records: BusRecord[];
  assigned: () => TopicPartition[];
}

function join(bus: Bus, groupId: string, topic: string): Member {
  const records: BusRecord[] = [];
  let assigned: TopicPartition[] = [];
  const consumer = bus.consumer({
    groupId,
    topics: [topic],
    sessionTimeoutMs: 6000,
    maxWaitMs: 100,
    onRecords: (r) => records.push(...r),
    onAssignment: (tps) => (assigned = tps),
  });
  return { consumer, records, assigned: () => assigned };
}

function nextOffsets(records: BusRecord[], owned: TopicPartition[]) {
  return owned.flatMap((tp) => {
    const mine = records.filter((r) => r.partition === tp.partition && r.topic === tp.topic);
    return mine.length ? [{ ...tp, offset: Math.max(...mine.map((r) => r.offset)) + 1 }] : [];
  });
}

for (const backend of busBackends()) {
  const it = suite(`group consumer on ${backend.name}`);
  it.after(cleanup);

  const setup = async () => {
    const bus = newBus(backend.name);
    const topic = unique("t-bus");
    if (backend.name === "kafka") deleteTopicsLater([topic]);
    await bus.ensureTopics([topic], 3);
    return { bus, topic, group: unique("g") };
  };

  it("delivers records in offset order per partition, with key, value and headers", async () => {
    const { bus, topic, group } = await setup();
    await bus.publish(
      topic,
      Array.from({ length: 30 }, (_, i) => ({
        key: `k${i % 4}`,
        value: JSON.stringify({ i }),
        headers: { n: String(i) },
      })),
    );
    const m = join(bus, group, topic);
    await m.consumer.start();
    await waitFor(() => m.records.length === 30, 20_000, "30 records");
    for (let k = 0; k < 4; k++) {
      const mine = m.records.filter((r) => r.key === `k${k}`);
      assert.is(new Set(mine.map((r) => r.partition)).size, 1);
      const is = mine.map((r) => JSON.parse(r.value!).i);
      assert.equal(is, [...is].sort((a, b) => a - b));
      assert.ok(mine.every((r) => r.headers.n === String(JSON.parse(r.value!).i)));
    }
    assert.ok(m.records.every((r) => r.size > 0 && r.timestamp > 0));
    await m.consumer.stop();
  });

  it("check() is ok only while in the group; a new member starts after committed offsets", async () => {
    const { bus, topic, group } = await setup();
    await bus.publish(
      topic,
      Array.from({ length: 9 }, (_, i) => ({ key: `k${i}`, value: `${i}` })),
    );
    const m1 = join(bus, group, topic);
    assert.is((await m1.consumer.check()).ok, false);
    await m1.consumer.start();
    await waitFor(() => m1.records.length === 9, 20_000, "9 records");
    assert.is((await m1.consumer.check()).ok, true);
    assert.is(m1.consumer.inGroup(), true);
    const committed = await m1.consumer.commit(nextOffsets(m1.records, m1.assigned()));
    assert.is(committed.length, m1.assigned().length);
    await m1.consumer.stop();
    assert.is((await m1.consumer.check()).ok, false);

    await bus.publish(topic, [{ key: "late", value: "late" }]);
    const m2 = join(bus, group, topic);
    await m2.consumer.start();
    await waitFor(() => m2.records.length === 1, 20_000, "the record after the committed ones");
    // Real broker: a committed record redelivered would arrive within this window.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(m2.records.map((r) => r.value), ["late"]);
    await m2.consumer.stop();
  });

  it("members split the partitions; a member leaving without commits hands its records over", async () => {
    const { bus, topic, group } = await setup();
    const a = join(bus, group, topic);
    await a.consumer.start();
    await waitFor(() => a.assigned().length === 3, 20_000, "a owns all");
    const b = join(bus, group, topic);
    await b.consumer.start();
    await waitFor(
      () => a.assigned().length + b.assigned().length === 3 && b.assigned().length > 0,
      20_000,
      "partitions split",
    );
    await bus.publish(
      topic,
      Array.from({ length: 60 }, (_, i) => ({ key: `k${i}`, value: `${i}` })),
    );
    await waitFor(() => a.records.length + b.records.length >= 60, 20_000, "60 records");
    assert.ok(a.records.length > 0 && b.records.length > 0);
    // b commits what it read; a commits nothing and leaves.
    assert.ok((await b.consumer.commit(nextOffsets(b.records, b.assigned()))).length > 0);
    const fromA = new Set(a.records.map((r) => r.value));
    await a.consumer.stop();
    await waitFor(() => b.assigned().length === 3, 20_000, "b owns all");
    await waitFor(
      () => [...fromA].every((v) => b.records.some((r) => r.value === v)),
      20_000,
      "a's records delivered to b",
    );
    await b.consumer.stop();
  });

  it("commit() skips partitions the member does not own", async () => {
    const { bus, topic, group } = await setup();
    const m = join(bus, group, topic);
    await m.consumer.start();
    await waitFor(() => m.assigned().length === 3, 20_000, "assignment");
    const done = await m.consumer.commit([
      { topic, partition: 0, offset: 0 },
      { topic: "not-mine", partition: 0, offset: 5 },
    ]);
    assert.equal(done, [{ topic, partition: 0, offset: 0 }]);
    await m.consumer.stop();
    assert.equal(await m.consumer.commit([{ topic, partition: 0, offset: 0 }]), []);
  });

  it("pause() stops fetching a topic and resume() continues", async () => {
    const { bus, topic, group } = await setup();
    const m = join(bus, group, topic);
    await m.consumer.start();
    await waitFor(() => m.consumer.inGroup(), 20_000, "in group");
    m.consumer.pause([topic]);
    // Real broker: fetches in flight before the pause end, then a window for a wrong delivery.
    await new Promise((r) => setTimeout(r, 300));
    await bus.publish(topic, [{ key: "a", value: "1" }]);
    await new Promise((r) => setTimeout(r, 1000));
    assert.is(m.records.length, 0);
    m.consumer.resume([topic]);
    await waitFor(() => m.records.length === 1, 20_000, "record after resume");
    await waitFor(
      () => m.consumer.highWatermarks().reduce((n, hw) => n + hw.offset, 0) === 1,
      5_000,
      "high watermark",
    );
    await m.consumer.stop();
  });

  it.run();
}
