/**
 * The bulk-consumer loop, the same tests on the embedded bus and store and on Kafka with Redis.
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as v from "valibot";
import { APPLIED, defineBulkConsumer, type Message } from "../../src/consumers/define.ts";
import { BulkConsumerService } from "../../src/consumers/bulk-consumer.ts";
import { DLQ_HEADERS } from "../../src/consumers/dead-letter.ts";
import { UnavailableError } from "../../src/infra/store.ts";
import { busBackends, cleanup, unique, waitFor } from "../helpers.ts";
import { harness, inGroup } from "./harness.ts";

const Value = v.object({ n: v.number(), poison: v.optional(v.boolean()) });
type Value = v.InferOutput<typeof Value>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const values = (from: number, count: number, extra: Record<string, unknown> = {}) =>
  Array.from({ length: count }, (_, i) => ({
    key: `k${from + i}`,
    value: JSON.stringify({ n: from + i, ...extra }),
  }));

for (const backend of busBackends()) {
  const it = suite(`bulk consumer on ${backend.name}`);
  it.after(cleanup);

  it("gathers records across partitions and fetches into batches bounded by maxBatchSize", async () => {
    const h = await harness(backend);
    const batches: Message<Value>[][] = [];
    const def = defineBulkConsumer({
      name: unique("b"),
      topic: h.topic,
      schema: Value,
      maxBatchSize: 250,
      maxWaitMs: 500,
      handler: (batch) => Promise.resolve(void batches.push(batch)),
    });
    for (let i = 0; i < 10; i++) await h.publish(values(i * 100, 100));
    await h.run(new BulkConsumerService(h.rt, def));
    await waitFor(() => batches.flat().length >= 1000, 30_000, "1000 records");
    assert.is(batches.flat().length, 1000);
    assert.ok(batches.every((b) => b.length <= 250));
    assert.ok(batches.length <= 8, `${batches.length} batches`);
    assert.ok(batches.some((b) => new Set(b.map((m) => m.partition)).size > 1), "mixed partitions");
    for (let p = 0; p < 3; p++) {
      const offsets = batches.flat().filter((m) => m.partition === p).map((m) => m.offset);
      assert.equal(offsets, offsets.map((_, i) => i), `partition ${p} in order`);
    }
    const labels = { consumer: def.name };
    assert.is(await h.metric("consumer_batch_size_count", labels), batches.length);
    assert.is(await h.metric("consumer_batch_size_sum", labels), 1000);
  });

  it("maxWaitMs closes a partial batch and maxBatchBytes bounds a batch", async () => {
    const h = await harness(backend);
    const batches: number[] = [];
    const bytes: number[] = [];
    const def = defineBulkConsumer({
      name: unique("b"),
      topic: h.topic,
      schema: Value,
      maxBatchSize: 1000,
      maxBatchBytes: 2000,
      maxWaitMs: 100,
      // deno-lint-ignore require-await
      handler: async (batch) => {
        batches.push(batch.length);
        bytes.push(batch.reduce((n, m) => n + JSON.stringify(m.value).length + m.key!.length, 0));
      },
    });
    const service = await h.run(new BulkConsumerService(h.rt, def));
    await inGroup(service);
    await h.publish(values(0, 3));
    await waitFor(() => batches.length === 1, 30_000, "a partial batch");
    assert.is(batches[0], 3);
    await h.publish(values(100, 600));
    await waitFor(() => batches.reduce((a, b) => a + b, 0) === 603, 30_000, "603 records");
    assert.ok(bytes.every((n) => n <= 2000), `batch bytes ${bytes}`);
    assert.ok(batches.length >= 4, `batch sizes ${batches}`);
  });

  it("a poison record is isolated by bisecting: dead-lettered, the rest of its batch stored once", async () => {
    const h = await harness(backend);
    const stats = `${h.rt.config.keyPrefix}:{stats}`;
    let calls = 0;
    const def = defineBulkConsumer({
      name: unique("b"),
      topic: h.topic,
      schema: Value,
      maxAttempts: 2,
      initialBackoffMs: 10,
      maxBatchSize: 200,
      maxWaitMs: 300,
      handler: async (batch, ctx) => {
        calls++;
        const poison = batch.find((m) => m.value.poison);
        if (poison) throw new Error(`Record ${poison.value.n} cannot be stored`);
        await ctx.onceEach(
          batch.map((m) => ({ id: m.id, commands: [["SADD", `${stats}:ns`, m.value.n]] })),
          [["HINCRBY", stats, "stored", APPLIED]],
        );
      },
    });
    await h.publish([...values(0, 60), ...values(60, 1, { poison: true }), ...values(61, 59)]);
    await h.run(new BulkConsumerService(h.rt, def));
    const dead = await h.deadLetters();
    await waitFor(() => dead.length === 1, 30_000, "one dead letter");
    await waitFor(
      async () => (await h.rt.store.command(["HGET", stats, "stored"])) === "119",
      30_000,
      "119 stored",
    );
    assert.is(await h.rt.store.command(["SCARD", `${stats}:ns`]), 119);
    assert.is(await h.rt.store.command(["SISMEMBER", `${stats}:ns`, "60"]), 0);
    assert.equal(JSON.parse(dead[0].value!), { n: 60, poison: true });
    assert.is(dead[0].headers[DLQ_HEADERS.reason], "handler");
    assert.is(dead[0].headers[DLQ_HEADERS.attempts], "2");
    assert.match(dead[0].headers[DLQ_HEADERS.error], "Record 60 cannot be stored");
    assert.ok(calls < 40, `${calls} handler calls`);
  });

  it("schema failures go to the dead-letter topic at once; the rest of the batch is handled", async () => {
    const h = await harness(backend);
    const handled: number[] = [];
    const def = defineBulkConsumer({
      name: unique("b"),
      topic: h.topic,
      schema: Value,
      maxWaitMs: 300,
      handler: (batch) => Promise.resolve(void handled.push(...batch.map((m) => m.value.n))),
    });
    await h.publish([...values(0, 5), { key: "bad", value: "[1, 2" }, ...values(5, 5)]);
    await h.run(new BulkConsumerService(h.rt, def));
    const dead = await h.deadLetters();
    await waitFor(() => handled.length === 10 && dead.length === 1, 30_000, "10 handled, 1 dead");
    assert.is(dead[0].headers[DLQ_HEADERS.reason], "schema");
    assert.is(dead[0].value, "[1, 2");
  });

  it("an unavailable store holds the batch until it is back, with nothing dead-lettered", async () => {
    const h = await harness(backend);
    let calls = 0;
    const handled: number[] = [];
    const def = defineBulkConsumer({
      name: unique("b"),
      topic: h.topic,
      schema: Value,
      maxAttempts: 1,
      initialBackoffMs: 10,
      maxBackoffMs: 20,
      // deno-lint-ignore require-await
      handler: async (batch) => {
        if (++calls <= 4) throw new UnavailableError("redis", "connection lost");
        handled.push(...batch.map((m) => m.value.n));
      },
    });
    await h.run(new BulkConsumerService(h.rt, def));
    const dead = await h.deadLetters();
    await h.publish(values(0, 20));
    await waitFor(() => handled.length === 20, 30_000, "20 handled");
    await sleep(200); // Real broker: a dead letter would arrive within this window.
    assert.is(dead.length, 0);
  });

  it("stop() mid-stream finishes the batch in hand and commits it; a restart stores the rest exactly once", async () => {
    const h = await harness(backend);
    const stats = `${h.rt.config.keyPrefix}:{stats}`;
    let batches = 0;
    const def = defineBulkConsumer({
      name: unique("b"),
      topic: h.topic,
      schema: Value,
      maxBatchSize: 100,
      maxWaitMs: 50,
      handler: async (batch, ctx) => {
        batches++;
        await sleep(50); // The handler's work, so batches pile up.
        await ctx.onceEach(
          batch.map((m) => ({ id: m.id, commands: [["SADD", `${stats}:ns`, m.value.n]] })),
          [["HINCRBY", stats, "stored", APPLIED], ["HINCRBY", stats, "handled", batch.length]],
        );
      },
    });
    for (let i = 0; i < 20; i++) await h.publish(values(i * 100, 100));
    const first = await h.run(new BulkConsumerService(h.rt, def));
    await waitFor(() => batches >= 3, 30_000, "3 batches");
    await first.stop(Date.now() + 5_000);
    const stored = Number(await h.rt.store.command(["HGET", stats, "stored"]));
    assert.ok(stored > 0 && stored < 2000, `stored ${stored} at stop`);
    await h.run(new BulkConsumerService(h.rt, def));
    await waitFor(
      async () => (await h.rt.store.command(["HGET", stats, "stored"])) === "2000",
      60_000,
      "2000 stored",
    );
    await sleep(300); // Real broker: a duplicate batch would land within this window.
    assert.is(await h.rt.store.command(["SCARD", `${stats}:ns`]), 2000);
    assert.is(
      await h.rt.store.command(["HGET", stats, "handled"]),
      "2000",
      "nothing handled twice",
    );
  });

  it("a full buffer pauses fetching until the handler catches up", async () => {
    const h = await harness(backend);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let handled = 0;
    const def = defineBulkConsumer({
      name: unique("b"),
      topic: h.topic,
      schema: Value,
      maxBatchSize: 100,
      maxWaitMs: 10,
      handler: async (batch) => {
        await gate;
        handled += batch.length;
      },
    });
    const service = new BulkConsumerService(h.rt, def);
    await h.run(service);
    // 2 KiB records: the buffer's bound is 16 MiB (~8 000 of them), a fetch ~1 MiB a partition.
    const pad = "x".repeat(2048);
    for (let i = 0; i < 20; i++) {
      await h.publish(
        values(i * 1000, 1000).map((m) => ({
          ...m,
          value: m.value.replace("}", `,"pad":"${pad}"}`),
        })),
      );
    }
    const lag = () => h.metric("consumer_lag", { consumer: def.name });
    await waitFor(async () => (await lag()) === 20_000, 30_000, "lag 20 000");
    await sleep(500); // Real broker: time for the fetches to overfill a buffer without a bound.
    const buffered = (service as unknown as { buffer: { count: number } }).buffer.count;
    assert.ok(buffered >= 1000 && buffered <= 12_000, `${buffered} buffered`);
    release();
    await waitFor(() => handled === 20_000, 60_000, "20 000 handled");
  });

  it.run();
}
