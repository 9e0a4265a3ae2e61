/**
 * A send that timed out for its caller and lands later (issue 11): with one follower frozen
 * (SIGSTOP), the leader holds an `acks=all` write until the controller fences the follower
 * (about 3 s); a caller with a 1 s deadline is answered `UnavailableError` first. The write then
 * completes: the bus logs it as landed after its caller was answered, with the message's id,
 * and the record in the topic carries that id (`message-id`), which consumers apply once.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { KafkaBus } from "../../src/infra/kafka.ts";
import { UnavailableError } from "../../src/infra/store.ts";
import { MESSAGE_ID_HEADER } from "../../src/infra/bus.ts";
import { createLogger } from "../../src/log.ts";
import {
  cleanup,
  deleteTopicsLater,
  KAFKA_CLUSTER_BROKERS,
  onCleanup,
  unique,
  waitFor,
} from "../helpers.ts";
import { clusterClient, clusterNodes, readTopicBack, restartCluster } from "../kafka-cluster.ts";

test.after(cleanup);

test("a write that outlives its caller's deadline is reported with its id when it lands", async () => {
  const lines: string[] = [];
  const bus = new KafkaBus(
    KAFKA_CLUSTER_BROKERS.split(","),
    createLogger("warn", {}, (l) => {
      lines.push(l);
    }),
    { clientId: "svc-test", publishTimeoutMs: 1_000, settings: { partitions: 1 } },
  );
  onCleanup(() => bus.close());
  const topic = unique("late");
  deleteTopicsLater([topic], KAFKA_CLUSTER_BROKERS);
  await bus.ensureTopics([topic]);
  // The new topic's leader may take a moment to be known (more after the broker-loss test's kill
  // and restart of the leader of most partitions): warm up until one write is acknowledged.
  await waitFor(
    () => bus.publish(topic, [{ key: "warm", value: "up" }]).then(() => true),
    20_000,
    "a first acknowledged write",
    200,
  );

  const kafka = clusterClient();
  const admin = kafka.admin();
  await admin.connect();
  onCleanup(() => admin.disconnect());
  const [p0] = (await admin.fetchTopicMetadata({ topics: [topic] })).topics[0].partitions;
  const followerId = p0.isr.find((id) => id !== p0.leader)!;
  const follower = (await clusterNodes()).find((n) => n.id === followerId)!;
  Deno.kill(follower.pid, "SIGSTOP");
  let resumed = false;
  const resume = async () => {
    if (resumed) return;
    resumed = true;
    Deno.kill(follower.pid, "SIGCONT");
    await restartCluster();
  };
  onCleanup(resume);

  // The message's own id, so a late landing of a warm-up write is not taken for this one's.
  const id = crypto.randomUUID();
  const t0 = Date.now();
  const err = await bus.publish(topic, [{
    key: "k",
    value: "late-one",
    headers: { [MESSAGE_ID_HEADER]: id },
  }]).then(
    () => undefined,
    (e) => e,
  );
  const answeredMs = Date.now() - t0;
  assert.instance(err, UnavailableError, String(err));
  assert.ok(answeredMs < 2_500, `answered in ${answeredMs} ms`);

  const landed = await waitFor(
    () =>
      lines.map((l) => JSON.parse(l)).find((r) =>
        r.msg === "messages landed after their caller was answered 503" &&
        r.message_ids.includes(id)
      ),
    20_000,
    "the late landing reported",
    100,
  );
  console.log(`answered 503 after ${answeredMs} ms; landed ${Date.now() - t0} ms after the send`);
  await resume();
  const records = await readTopicBack(kafka, topic);
  const late = records.filter((r) => r.value === "late-one");
  assert.is(late.length, 1);
  assert.equal(landed.message_ids, [id]);
  assert.is(late[0].headers[MESSAGE_ID_HEADER], id);
});

test.run();
