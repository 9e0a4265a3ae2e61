import { test } from "uvu";
import * as assert from "uvu/assert";
import kafkajs from "kafkajs";
import { orderKey } from "../../src/example/keys.ts";
import {
  cleanup,
  KAFKA_BROKERS,
  onCleanup,
  postJson,
  REDIS_URL,
  spawnProgram,
  unique,
  waitFor,
} from "../helpers.ts";
import { createClient } from "redis";

test.after(cleanup);

test("with REDIS_URL and KAFKA_BROKERS a posted order is in Redis and on <TOPIC_PREFIX>orders", async () => {
  const prefix = unique("t");
  const topicPrefix = `${prefix}.`;
  const p = await spawnProgram({
    ROLE: "http",
    REDIS_URL,
    KAFKA_BROKERS,
    KEY_PREFIX: prefix,
    TOPIC_PREFIX: topicPrefix,
  });
  const res = await postJson(`${p.url}/orders`, { item: "lamp", qty: 3 });
  assert.is(res.status, 201);
  const order = await res.json();

  const redis = createClient({ url: REDIS_URL });
  await redis.connect();
  onCleanup(() => redis.close());
  const stored = await redis.hGetAll(orderKey(prefix, order.id));
  assert.is(stored.item, "lamp");
  assert.is(stored.qty, "3");

  const kafka = new kafkajs.Kafka({
    brokers: KAFKA_BROKERS.split(","),
    logLevel: kafkajs.logLevel.NOTHING,
  });
  const consumer = kafka.consumer({ groupId: `${prefix}-reader` });
  await consumer.connect();
  onCleanup(() => consumer.disconnect());
  await consumer.subscribe({ topic: `${topicPrefix}orders`, fromBeginning: true });
  const seen: { key: string; value: Record<string, unknown> }[] = [];
  await consumer.run({
    eachMessage: ({ message }) => {
      seen.push({ key: String(message.key), value: JSON.parse(String(message.value)) });
      return Promise.resolve();
    },
  });
  const got = await waitFor(
    () => seen.find((m) => m.key === order.id),
    30_000,
    "the order on the topic",
  );
  assert.is(got.value.item, "lamp");
  assert.is(got.value.qty, 3);
  assert.is((await p.stop()).code, 0);
});

test.run();
