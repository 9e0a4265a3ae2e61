/**
 * Topics the program creates on a 3-broker cluster whose default replication factor is left
 * at 1: RF min(3, brokers) and min.insync.replicas RF − 1 unless KAFKA_REPLICATION_FACTOR says
 * otherwise, `.dlq` topics alike, and nothing created by the brokers' auto-creation.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import kafkajs from "kafkajs";
import { KafkaBus } from "../../src/infra/kafka.ts";
import { createLogger } from "../../src/log.ts";
import {
  cleanup,
  deleteTopicsLater,
  KAFKA_CLUSTER_BROKERS,
  onCleanup,
  unique,
} from "../helpers.ts";
import { clusterClient } from "../kafka-cluster.ts";

test.after(cleanup);

const kafka = clusterClient();
const admin = kafka.admin();
await admin.connect();
onCleanup(() => admin.disconnect());

function bus(settings: { replicationFactor?: number; partitions?: number } = {}) {
  const b = new KafkaBus(KAFKA_CLUSTER_BROKERS.split(","), createLogger("error"), {
    clientId: "svc-test",
    settings: {
      partitions: settings.partitions ?? 3,
      replicationFactor: settings.replicationFactor,
    },
  });
  onCleanup(() => b.close());
  return b;
}

async function describe(topic: string) {
  const meta = await admin.fetchTopicMetadata({ topics: [topic] });
  const configs = await admin.describeConfigs({
    resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic }],
    includeSynonyms: false,
  });
  const minIsr = configs.resources[0].configEntries.find((e) =>
    e.configName === "min.insync.replicas"
  );
  return {
    partitions: meta.topics[0].partitions.length,
    replicas: meta.topics[0].partitions.map((p) => p.replicas.length),
    minIsr: Number(minIsr?.configValue),
  };
}

test("the brokers' own default replication factor is 1 (so the program must set its own)", async () => {
  const configs = await admin.describeConfigs({
    resources: [{ type: kafkajs.ConfigResourceTypes.BROKER, name: "1" }],
    includeSynonyms: false,
  });
  const rf = configs.resources[0].configEntries.find((e) =>
    e.configName === "default.replication.factor"
  );
  assert.is(rf?.configValue, "1");
});

test("ensureTopics() creates RF 3, min ISR 2 topics (and .dlq) by default on 3 brokers", async () => {
  const topic = unique("rf");
  deleteTopicsLater([topic, `${topic}.dlq`], KAFKA_CLUSTER_BROKERS);
  assert.equal(await bus({ partitions: 4 }).ensureTopics([topic, `${topic}.dlq`]), []);
  for (const t of [topic, `${topic}.dlq`]) {
    const d = await describe(t);
    assert.is(d.partitions, 4, t);
    assert.equal(d.replicas, [3, 3, 3, 3], t);
    assert.is(d.minIsr, 2, t);
  }
});

test("KAFKA_REPLICATION_FACTOR=2 gives RF 2 and min ISR 1; RF 1 keeps min ISR 1", async () => {
  const two = unique("rf2");
  const one = unique("rf1");
  deleteTopicsLater([two, one], KAFKA_CLUSTER_BROKERS);
  await bus({ replicationFactor: 2 }).ensureTopics([two]);
  await bus({ replicationFactor: 1 }).ensureTopics([one]);
  assert.equal(await describe(two), { partitions: 3, replicas: [2, 2, 2], minIsr: 1 });
  assert.equal(await describe(one), { partitions: 3, replicas: [1, 1, 1], minIsr: 1 });
});

test("publishing to a new topic creates it with the program's settings, not the brokers' auto-creation", async () => {
  const topic = unique("pub");
  deleteTopicsLater([topic], KAFKA_CLUSTER_BROKERS);
  await bus().publish(topic, [{ key: "k", value: "v" }]);
  assert.equal(await describe(topic), { partitions: 3, replicas: [3, 3, 3], minIsr: 2 });
});

test.run();
