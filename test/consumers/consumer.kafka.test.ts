/**
 * The consumer loop, the same tests on the embedded bus and store and on Kafka with Redis.
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as v from "valibot";
import { defineConsumer, type Message } from "../../src/consumers/define.ts";
import { ConsumerService } from "../../src/consumers/consumer.ts";
import { DLQ_HEADERS } from "../../src/consumers/dead-letter.ts";
import { UnavailableError } from "../../src/infra/store.ts";
import { MESSAGE_ID_HEADER } from "../../src/infra/bus.ts";
import { busBackends, cleanup, unique, waitFor } from "../helpers.ts";
import { harness, inGroup } from "./harness.ts";

const Value = v.object({ n: v.number(), poison: v.optional(v.boolean()) });
type Value = v.InferOutput<typeof Value>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const backend of busBackends()) {
  const it = suite(`consumer on ${backend.name}`);
  it.after(cleanup);

  it("handles every message in partition order, and a restart continues after the committed ones", async () => {
    const h = await harness(backend);
    const seen: Message<Value>[] = [];
    const def = defineConsumer({
      name: unique("c"),
      topic: h.topic,
      schema: Value,
      handler: (m) => Promise.resolve(void seen.push(m)),
    });
    await h.publish(
      Array.from({ length: 60 }, (_, n) => ({ key: `k${n % 6}`, value: JSON.stringify({ n }) })),
    );
    const first = await h.run(new ConsumerService(h.rt, def));
    await waitFor(() => seen.length >= 60, 30_000, "60 messages");
    for (let k = 0; k < 6; k++) {
      const ns = seen.filter((m) => m.key === `k${k}`).map((m) => m.value.n);
      assert.equal(ns, [...ns].sort((a, b) => a - b));
    }
    assert.is(new Set(seen.map((m) => m.id)).size, 60);
    // The publisher's message id when the bus set one (Kafka does, the same on every retry),
    // else the record's place in the log.
    assert.ok(
      seen.every((m) =>
        m.id === (m.headers[MESSAGE_ID_HEADER] ?? `${m.topic}/${m.partition}/${m.offset}`)
      ),
    );
    if (backend.name === "kafka") assert.ok(seen.every((m) => m.headers[MESSAGE_ID_HEADER]));
    await first.stop(Date.now() + 5_000);

    await h.publish([{ key: "late", value: JSON.stringify({ n: 60 }) }]);
    const again = await h.run(new ConsumerService(h.rt, def));
    await waitFor(() => seen.length === 61, 30_000, "the new message");
    await sleep(500); // Real broker: a redelivered message would arrive within this window.
    assert.is(seen.length, 61, "no message handled twice after a clean stop");
    assert.is(await h.metric("consumer_messages_processed_total", { consumer: def.name }), 61);
    await again.stop(Date.now() + 5_000);
  });

  it("a failing message is retried with backoff, then dead-lettered with headers; later ones go on", async () => {
    const h = await harness(backend);
    const tries = new Map<number, number>();
    const handled: number[] = [];
    const def = defineConsumer({
      name: unique("c"),
      topic: h.topic,
      schema: Value,
      maxAttempts: 3,
      initialBackoffMs: 20,
      // deno-lint-ignore require-await
      handler: async (m, ctx) => {
        tries.set(m.value.n, ctx.attempt);
        if (m.value.poison) throw new Error(`Cannot handle ${m.value.n}`);
        handled.push(m.value.n);
      },
    });
    await h.run(new ConsumerService(h.rt, def));
    const dead = await h.deadLetters();
    await h.publish([
      { key: "same", value: JSON.stringify({ n: 1 }) },
      { key: "same", value: JSON.stringify({ n: 2, poison: true }), headers: { trace: "t-1" } },
      { key: "same", value: JSON.stringify({ n: 3 }) },
    ]);
    await waitFor(
      () => handled.includes(3) && dead.length === 1,
      30_000,
      "message 3 and a dead letter",
    );
    assert.equal(handled, [1, 3]);
    assert.is(tries.get(2), 3);
    const letter = dead[0];
    assert.is(letter.key, "same");
    assert.equal(JSON.parse(letter.value!), { n: 2, poison: true });
    assert.match(letter.headers[DLQ_HEADERS.error], "Cannot handle 2");
    assert.is(letter.headers[DLQ_HEADERS.reason], "handler");
    assert.is(letter.headers[DLQ_HEADERS.attempts], "3");
    assert.is(letter.headers[DLQ_HEADERS.originalTopic], h.fullTopic);
    assert.ok(/^\d+$/.test(letter.headers[DLQ_HEADERS.originalPartition]));
    assert.is(letter.headers[DLQ_HEADERS.originalOffset], "1");
    assert.is(letter.headers[DLQ_HEADERS.consumer], def.name);
    assert.is(letter.headers.trace, "t-1");
    const labels = { consumer: def.name };
    assert.is(await h.metric("consumer_messages_failed_total", labels), 3);
    assert.is(
      await h.metric("consumer_messages_dead_lettered_total", { ...labels, reason: "handler" }),
      1,
    );
  });

  it("invalid JSON and schema failures go to the dead-letter topic at once, unseen by the handler", async () => {
    const h = await harness(backend);
    const handled: number[] = [];
    const def = defineConsumer({
      name: unique("c"),
      topic: h.topic,
      schema: Value,
      handler: (m) => Promise.resolve(void handled.push(m.value.n)),
    });
    await h.run(new ConsumerService(h.rt, def));
    const dead = await h.deadLetters();
    await h.publish([
      { key: "k", value: "{not json" },
      { key: "k", value: JSON.stringify({ n: "one" }) },
      { key: "k", value: JSON.stringify({ n: 7 }) },
    ]);
    await waitFor(() => handled.length === 1 && dead.length === 2, 30_000, "one handled, two dead");
    const reasons = dead.map((
      d,
    ) => [d.headers[DLQ_HEADERS.reason], d.headers[DLQ_HEADERS.attempts]]);
    assert.equal(reasons, [["schema", "0"], ["schema", "0"]]);
    assert.match(dead[0].headers[DLQ_HEADERS.error], "not JSON");
    assert.match(dead[1].headers[DLQ_HEADERS.error], "n:");
    assert.is(dead[0].value, "{not json");
    assert.is(await h.metric("consumer_messages_dead_lettered_total", { reason: "schema" }), 2);
  });

  it("a handler failing with UnavailableError waits for the dependency instead of dead-lettering", async () => {
    const h = await harness(backend);
    let calls = 0;
    const def = defineConsumer({
      name: unique("c"),
      topic: h.topic,
      schema: Value,
      maxAttempts: 2,
      initialBackoffMs: 10,
      maxBackoffMs: 20,
      // deno-lint-ignore require-await
      handler: async () => {
        if (++calls <= 5) throw new UnavailableError("redis", "connection refused");
      },
    });
    await h.run(new ConsumerService(h.rt, def));
    const dead = await h.deadLetters();
    await h.publish([{ key: "k", value: JSON.stringify({ n: 1 }) }]);
    await waitFor(() => calls === 6, 30_000, "success on the 6th call");
    await sleep(300); // Real broker: a dead letter would arrive within this window.
    assert.is(dead.length, 0);
    assert.is(await h.metric("consumer_messages_processed_total", { consumer: def.name }), 1);
  });

  it("ctx.once() applies an effect once per identity, however often it comes", async () => {
    const h = await harness(backend);
    const counter = `${h.rt.config.keyPrefix}:{count}`;
    const applied: boolean[] = [];
    const def = defineConsumer({
      name: unique("c"),
      topic: h.topic,
      schema: Value,
      handler: async (m, ctx) => {
        applied.push(await ctx.once([["INCR", counter]], `n:${m.value.n}`));
      },
    });
    await h.run(new ConsumerService(h.rt, def));
    await h.publish([1, 2, 1, 1, 3, 2].map((n) => ({ key: "k", value: JSON.stringify({ n }) })));
    await waitFor(() => applied.length === 6, 30_000, "6 messages");
    assert.equal(applied, [true, true, false, false, true, false]);
    assert.is(await h.rt.store.command(["GET", counter]), "3");
  });

  it("stop() finishes the message in hand and commits it; a restart neither loses nor repeats any", async () => {
    const h = await harness(backend);
    const seen: number[] = [];
    const def = defineConsumer({
      name: unique("c"),
      topic: h.topic,
      schema: Value,
      handler: async (m) => {
        await sleep(20); // The handler's work: the stop comes mid-stream.
        seen.push(m.value.n);
      },
    });
    await h.publish(
      Array.from({ length: 150 }, (_, n) => ({ key: `k${n}`, value: JSON.stringify({ n }) })),
    );
    const first = await h.run(new ConsumerService(h.rt, def));
    await waitFor(() => seen.length >= 20, 30_000, "20 handled");
    await first.stop(Date.now() + 5_000);
    const atStop = seen.length;
    assert.ok(atStop < 150, "stopped mid-stream");
    await h.run(new ConsumerService(h.rt, def));
    await waitFor(() => seen.length >= 150, 60_000, "all handled");
    await sleep(500); // Real broker: a redelivered message would arrive within this window.
    assert.is(seen.length, 150, "each handled once");
    assert.is(new Set(seen).size, 150);
  });

  it("check() is ok only in the group; /metrics shows lag and membership", async () => {
    const h = await harness(backend);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const def = defineConsumer({
      name: unique("c"),
      topic: h.topic,
      schema: Value,
      handler: () => gate,
    });
    const service = new ConsumerService(h.rt, def);
    assert.is((await service.check()).ok, false);
    await h.run(service);
    await inGroup(service);
    await h.publish(
      Array.from({ length: 9 }, (_, n) => ({ key: "one", value: JSON.stringify({ n }) })),
    );
    await waitFor(
      async () => (await h.metric("consumer_lag", { consumer: def.name })) === 9,
      30_000,
      "lag 9",
    );
    assert.is(await h.metric("consumer_in_group", { consumer: def.name }), 1);
    release();
    await waitFor(
      async () => (await h.metric("consumer_lag", { consumer: def.name })) === 0,
      30_000,
      "lag 0",
    );
    const text = await h.rt.metrics.metrics();
    assert.match(text, "consumer_handler_seconds_bucket");
    await service.stop(Date.now() + 5_000);
    assert.equal(await service.check(), { ok: false, detail: "stopping" });
  });

  it("heartbeats go on during a handler longer than the session timeout: no rebalance, handled once", async () => {
    const h = await harness(backend);
    const seen: number[] = [];
    const def = defineConsumer({
      name: unique("c"),
      topic: h.topic,
      schema: Value,
      sessionTimeoutMs: 6000,
      handler: async (m) => {
        if (m.value.n === 0) await sleep(9000); // Work longer than the real session timeout.
        seen.push(m.value.n);
      },
    });
    const service = await h.run(new ConsumerService(h.rt, def));
    await inGroup(service);
    await h.publish([0, 1, 2].map((n) => ({ key: "k", value: JSON.stringify({ n }) })));
    await waitFor(() => seen.length === 3, 30_000, "3 handled");
    assert.equal(seen, [0, 1, 2]);
    assert.is((await service.check!()).ok, true);
    assert.is(await h.metric("consumer_rebalances_total", { consumer: def.name }), 1);
  });

  it("partitionsConsumedConcurrently runs partitions side by side, each in order", async () => {
    const h = await harness(backend);
    let running = 0, most = 0;
    const seen: Message<Value>[] = [];
    const def = defineConsumer({
      name: unique("c"),
      topic: h.topic,
      schema: Value,
      partitionsConsumedConcurrently: 3,
      handler: async (m) => {
        most = Math.max(most, ++running);
        await sleep(10); // The handler's work, so partitions overlap.
        running--;
        seen.push(m);
      },
    });
    await h.publish(
      Array.from({ length: 90 }, (_, n) => ({ key: `k${n % 9}`, value: JSON.stringify({ n }) })),
    );
    await h.run(new ConsumerService(h.rt, def));
    await waitFor(() => seen.length === 90, 30_000, "90 handled");
    assert.ok(most > 1, `at most ${most} at once`);
    for (let k = 0; k < 9; k++) {
      const ns = seen.filter((m) => m.key === `k${k}`).map((m) => m.value.n);
      assert.equal(ns, [...ns].sort((a, b) => a - b));
    }
  });

  it("two consumers in one group share the partitions; every effect is applied once", async () => {
    const h = await harness(backend);
    const counter = `${h.rt.config.keyPrefix}:{count}`;
    const byService = [0, 0];
    const make = (i: number) =>
      defineConsumer({
        name: unique("c"),
        group: "shared",
        topic: h.topic,
        schema: Value,
        handler: async (m, ctx) => {
          await sleep(2); // The handler's work, so both services share the stream.
          if (await ctx.once([["INCR", counter]], `n:${m.value.n}`)) byService[i]++;
        },
      });
    const a = await h.run(new ConsumerService(h.rt, make(0)));
    const b = await h.run(new ConsumerService(h.rt, make(1)));
    await inGroup(a);
    await inGroup(b);
    await h.publish(
      Array.from({ length: 300 }, (_, n) => ({ key: `k${n}`, value: JSON.stringify({ n }) })),
    );
    await waitFor(
      async () => (await h.rt.store.command(["GET", counter])) === "300",
      60_000,
      "300 effects",
    );
    await sleep(300); // Real broker: a duplicate effect would land within this window.
    assert.is(await h.rt.store.command(["GET", counter]), "300");
    assert.ok(byService[0] > 0 && byService[1] > 0, `shares ${byService}`);
  });

  it.run();
}
