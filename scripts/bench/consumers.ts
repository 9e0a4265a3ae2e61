/**
 * @module Consumers benchmark, in one run on the same Kafka broker and Redis:
 *  - our consumer vs a bare kafkajs `eachMessage` loop doing the same Redis write (MULTI of
 *    HSET + SADD per message), on the same topic;
 *  - our bulk consumer vs our consumer on that same topic (one MULTI per batch);
 *  - our bulk consumer vs a bare kafkajs `eachBatch` loop writing each fetched batch in one
 *    MULTI, on a bigger topic.
 * Each contender drains a pre-filled topic in its own consumer group; the time runs from its
 * first handled message to its last (group joins excluded). Rounds alternate the contenders
 * and the median is kept. Prints messages/s and the ratios.
 *
 * Then the produce side (`_produce.ts`): `POST /orders` and our sender against a bare kafkajs
 * producer at the same concurrency, on the single broker and on the 3-broker cluster
 * (`scripts/kafka-cluster.sh`).
 *
 * Usage: `deno task bench consumers [--messages 20000] [--bulk-messages 100000] [--rounds 3]
 *   [--produce 3000] [--concurrency 64] [--produce-only] [--no-cluster]`
 */
import kafkajs from "kafkajs";
import { createClient } from "redis";
import * as v from "valibot";
import { loadConfig } from "../../src/config.ts";
import { createRuntime, type Runtime, type Service } from "../../src/runtime.ts";
import { System } from "../../src/system.ts";
import { defineBulkConsumer, defineConsumer } from "../../src/consumers/define.ts";
import { ConsumerService } from "../../src/consumers/consumer.ts";
import { BulkConsumerService } from "../../src/consumers/bulk-consumer.ts";
import { key } from "../../src/infra/store.ts";
import { deleteKeys } from "../../test/helpers.ts";
import { arg, summaryRow } from "./_lib.ts";
import { produceBench } from "./_produce.ts";

const numArg = (name: string, fallback: number) => Number(arg(name, String(fallback)));
const MESSAGES = numArg("messages", 20_000);
const BULK_MESSAGES = numArg("bulk-messages", 100_000);
const ROUNDS = numArg("rounds", 3);
const PRODUCE = numArg("produce", 3000);
const CONCURRENCY = numArg("concurrency", 64);
const PRODUCE_ONLY = Deno.args.includes("--produce-only");
const CLUSTER = !Deno.args.includes("--no-cluster");
const CLUSTER_BROKERS = (Deno.env.get("KAFKA_CLUSTER_BROKERS") ??
  "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094").split(",");
const BATCH = 1000;
const BROKERS = (Deno.env.get("KAFKA_BROKERS") ?? "127.0.0.1:9092").split(",");
const REDIS_URL = Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379";
const ROOT = new URL("../../", import.meta.url).pathname;
const PREFIX = `bench-${crypto.randomUUID().slice(0, 8)}`;

for (const s of ["redis.sh", "kafka.sh", ...(CLUSTER ? ["kafka-cluster.sh"] : [])]) {
  const out = await new Deno.Command("bash", { args: [`${ROOT}scripts/${s}`], stdout: "null" })
    .output();
  if (out.code !== 0) throw new Error(`scripts/${s} failed`);
}

const Order = v.object({ id: v.string(), item: v.string(), qty: v.number() });
const orderKey = (id: string) => key(PREFIX, `order:${id}`);
const processedKey = (run: string) => key(PREFIX, "processed", run);
/** The write every contender does per message: mark the order, add it to the processed set. */
const write = (run: string, id: string): (string | number)[][] => [
  ["HSET", orderKey(id), "processed", "1"],
  ["SADD", processedKey(run), id],
];

const kafka = new kafkajs.Kafka({
  brokers: BROKERS,
  clientId: PREFIX,
  logLevel: kafkajs.logLevel.NOTHING,
});
const admin = kafka.admin();
await admin.connect();

async function fill(topic: string, count: number): Promise<void> {
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
  const producer = kafka.producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
  await producer.connect();
  for (let i = 0; i < count; i += 5000) {
    const n = Math.min(5000, count - i);
    await producer.send({
      topic,
      acks: -1,
      messages: Array.from({ length: n }, () => {
        const id = crypto.randomUUID();
        return { key: id, value: JSON.stringify({ id, item: "bench item", qty: 2 }) };
      }),
    });
  }
  await producer.disconnect();
}

/** Times a drain: from the first handled message to the `count`-th. */
class Clock {
  first = 0;
  last = 0;
  handled = 0;
  calls = 0;
  constructor(readonly count: number) {}
  tick(n = 1): void {
    if (this.handled === 0) this.first = performance.now();
    this.calls++;
    this.handled += n;
    if (this.handled >= this.count && !this.last) this.last = performance.now();
  }
  /** Average messages per handler call. */
  get batch(): number {
    return this.handled / Math.max(1, this.calls);
  }
  async done(timeoutMs = 600_000): Promise<number> {
    const end = Date.now() + timeoutMs;
    while (!this.last) {
      if (Date.now() > end) throw new Error(`Timed out at ${this.handled}/${this.count}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.count / ((this.last - this.first) / 1000);
  }
}

const redis = createClient({ url: REDIS_URL });
await redis.connect();

function runtime(): Runtime {
  const config = loadConfig({
    KAFKA_BROKERS: BROKERS.join(","),
    REDIS_URL,
    KEY_PREFIX: PREFIX,
    TOPIC_PREFIX: "",
    LOG_LEVEL: "error",
  });
  return createRuntime(config, new System());
}

async function bareEachMessage(topic: string, count: number, run: string): Promise<number> {
  const clock = new Clock(count);
  const consumer = kafka.consumer({ groupId: `${PREFIX}.${run}` });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const order = JSON.parse(message.value!.toString());
      await redis.multi().hSet(orderKey(order.id), "processed", "1").sAdd(
        processedKey(run),
        order.id,
      ).exec();
      clock.tick();
    },
  });
  const rate = await clock.done();
  await consumer.disconnect();
  return rate;
}

async function bareEachBatch(topic: string, count: number, run: string): Promise<number> {
  const clock = new Clock(count);
  const consumer = kafka.consumer({ groupId: `${PREFIX}.${run}` });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      const multi = redis.multi();
      for (const message of batch.messages) {
        const order = JSON.parse(message.value!.toString());
        multi.hSet(orderKey(order.id), "processed", "1").sAdd(processedKey(run), order.id);
      }
      await multi.exec();
      clock.tick(batch.messages.length);
    },
  });
  const rate = await clock.done();
  await consumer.disconnect();
  batchSizes.bareBatch.push(clock.batch);
  return rate;
}

/**
 * Runs one of our consumer services until its clock has seen every message, then stops it and
 * closes the runtime.
 *
 * @param rt its runtime
 * @param service the consumer or bulk consumer
 * @param clock ticked by its handler
 * @returns messages/s
 */
async function _drain(rt: Runtime, service: Service, clock: Clock): Promise<number> {
  await service.start();
  const rate = await clock.done();
  await service.stop(Date.now() + 10_000);
  await Promise.allSettled([rt.bus.close(), rt.store.close()]);
  return rate;
}

async function ours(topic: string, count: number, run: string): Promise<number> {
  const clock = new Clock(count);
  const rt = runtime();
  const service = new ConsumerService(
    rt,
    defineConsumer({
      name: run,
      topic,
      schema: Order,
      async handler(message, ctx) {
        await ctx.rt.store.multi(write(run, message.value.id));
        clock.tick();
      },
    }),
  );
  return await _drain(rt, service, clock);
}

async function oursBulk(topic: string, count: number, run: string): Promise<number> {
  const clock = new Clock(count);
  const rt = runtime();
  const service = new BulkConsumerService(
    rt,
    defineBulkConsumer({
      name: run,
      topic,
      schema: Order,
      maxBatchSize: BATCH,
      maxWaitMs: 100,
      async handler(batch, ctx) {
        await ctx.rt.store.multi(batch.flatMap((m) => write(run, m.value.id)));
        clock.tick(batch.length);
      },
    }),
  );
  const rate = await _drain(rt, service, clock);
  batchSizes[count === BULK_MESSAGES ? "oursBulk" : "oursBulkSmall"].push(clock.batch);
  return rate;
}

const batchSizes: Record<string, number[]> = { bareBatch: [], oursBulk: [], oursBulkSmall: [] };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (n: number) => Math.round(n).toLocaleString("en-US").padStart(9);

async function consumersSide(): Promise<void> {
  const small = `${PREFIX}.orders`;
  const big = `${PREFIX}.orders-big`;
  console.log(
    `Consumers benchmark: Kafka ${BROKERS.join(",")}, Redis ${REDIS_URL}, ${ROUNDS} rounds ` +
      `(median), topics of ${MESSAGES} and ${BULK_MESSAGES} messages, 3 partitions`,
  );
  await fill(small, MESSAGES);
  await fill(big, BULK_MESSAGES);

  const results: Record<string, number[]> = {
    bareMessage: [],
    ours: [],
    oursBulkSmall: [],
    bareBatch: [],
    oursBulk: [],
  };
  try {
    for (let r = 0; r < ROUNDS; r++) {
      // Alternate who goes first so neither always gets the warmer caches.
      const pairs: [keyof typeof results, () => Promise<number>][] = [
        ["bareMessage", () => bareEachMessage(small, MESSAGES, `bm${r}`)],
        ["ours", () => ours(small, MESSAGES, `c${r}`)],
        ["oursBulkSmall", () => oursBulk(small, MESSAGES, `bs${r}`)],
        ["bareBatch", () => bareEachBatch(big, BULK_MESSAGES, `bb${r}`)],
        ["oursBulk", () => oursBulk(big, BULK_MESSAGES, `b${r}`)],
      ];
      if (r % 2 === 1) pairs.reverse();
      for (const [name, go] of pairs) {
        const rate = await go();
        results[name].push(rate);
        console.log(`  round ${r + 1}: ${name.padEnd(14)} ${fmt(rate)} msg/s`);
      }
    }
    const m = Object.fromEntries(Object.entries(results).map(([k, xs]) => [k, median(xs)]));
    // Ratios are taken round by round (the two sides ran moments apart), then their median:
    // steadier than a ratio of medians on a machine whose load drifts.
    const ratio = (a: string, b: string) => median(results[a].map((x, i) => x / results[b][i]));
    console.log("\ncontender                                   |     msg/s (median)");
    console.log(`bare kafkajs eachMessage + MULTI            | ${fmt(m.bareMessage)}`);
    console.log(`our consumer (same write)                   | ${fmt(m.ours)}`);
    console.log(`our bulk consumer (same topic)              | ${fmt(m.oursBulkSmall)}`);
    console.log(`bare kafkajs eachBatch + MULTI per batch    | ${fmt(m.bareBatch)}`);
    console.log(`our bulk consumer (maxBatchSize ${BATCH})        | ${fmt(m.oursBulk)}`);
    console.log(
      `average batch: bare eachBatch ${Math.round(median(batchSizes.bareBatch))}, our bulk ${
        Math.round(median(batchSizes.oursBulk))
      } (same topic as our consumer: ${Math.round(median(batchSizes.oursBulkSmall))})`,
    );
    console.log("\nratio (median of per-round ratios)          | value | target");
    console.log(
      `our consumer / bare eachMessage             | ${
        ratio("ours", "bareMessage").toFixed(2)
      }  | ≥ 0.95`,
    );
    console.log(
      `our bulk / our consumer (same data)         | ${
        ratio("oursBulkSmall", "ours").toFixed(1).padStart(5)
      } | ≥ 10`,
    );
    console.log(
      `our bulk / bare eachBatch + pipeline        | ${
        ratio("oursBulk", "bareBatch").toFixed(2)
      }  | ≥ 0.95`,
    );
    const row = (what: string, a: string, b: string, baselineName: string, target: number) =>
      summaryRow({
        bench: "consumers",
        what,
        // The ratio is the median of per-round ratios; the figures are medians.
        ours: m[b] * ratio(a, b),
        baseline: m[b],
        baselineName,
        better: "higher",
        target,
        unit: "msg/s",
      });
    row("consumer: msg/s", "ours", "bareMessage", "kafkajs eachMessage", 0.95);
    row("bulk consumer vs our consumer, same data", "oursBulkSmall", "ours", "our consumer", 10);
    row("bulk consumer: msg/s", "oursBulk", "bareBatch", "kafkajs eachBatch", 0.95);
  } finally {
    await admin.deleteTopics({ topics: [small, big, `${small}.dlq`, `${big}.dlq`] }).catch(
      () => {},
    );
    await admin.disconnect();
    const rt = runtime();
    await deleteKeys(rt, `${PREFIX}:*`).catch(() => {});
    await Promise.allSettled([rt.bus.close(), rt.store.close()]);
    await redis.close();
  }
}

if (!PRODUCE_ONLY) await consumersSide();
try {
  const common = { redisUrl: REDIS_URL, count: PRODUCE, concurrency: CONCURRENCY, rounds: ROUNDS };
  await produceBench({
    ...common,
    brokers: BROKERS,
    label: "single broker",
    prefix: `${PREFIX}p1`,
  });
  if (CLUSTER) {
    await produceBench({
      ...common,
      brokers: CLUSTER_BROKERS,
      label: "3-broker cluster",
      prefix: `${PREFIX}p3`,
    });
  }
} finally {
  if (PRODUCE_ONLY) {
    await admin.disconnect();
    await redis.close();
  }
  const rt = runtime();
  for (const p of [`${PREFIX}p1`, `${PREFIX}p3`]) await deleteKeys(rt, `${p}:*`).catch(() => {});
  await Promise.allSettled([rt.bus.close(), rt.store.close()]);
}
