/**
 * The program on a SASL_SSL broker (scripts/kafka-sasl.sh): TLS with the broker's CA and a
 * client certificate, SCRAM-SHA-512, ACLs enforced. An order flows; a wrong password gives
 * `/readyz` 503 with the broker's reason and no password anywhere in the output; a principal
 * that may not create topics uses those that exist and names the missing one in `/readyz`.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import kafkajs from "kafkajs";
import {
  cleanup,
  KAFKA_SASL_BROKER,
  KAFKA_SASL_TLS_DIR,
  onCleanup,
  REDIS_URL,
  runProgram,
  spawnProgram,
  unique,
  waitFor,
} from "../helpers.ts";

test.after(cleanup);

const TLS = {
  KAFKA_BROKERS: KAFKA_SASL_BROKER,
  KAFKA_SSL: "true",
  KAFKA_SSL_CA_FILE: `${KAFKA_SASL_TLS_DIR}/ca.pem`,
  KAFKA_SSL_CERT_FILE: `${KAFKA_SASL_TLS_DIR}/client.pem`,
  KAFKA_SSL_KEY_FILE: `${KAFKA_SASL_TLS_DIR}/client-key.pem`,
  KAFKA_SASL_MECHANISM: "scram-sha-512",
};

const superAdmin = new kafkajs.Kafka({
  brokers: [KAFKA_SASL_BROKER],
  ssl: { ca: Deno.readTextFileSync(`${KAFKA_SASL_TLS_DIR}/ca.pem`) },
  sasl: { mechanism: "scram-sha-512", username: "admin", password: "admin-secret" },
  logLevel: kafkajs.logLevel.NOTHING,
}).admin();
await superAdmin.connect();
onCleanup(() => superAdmin.disconnect());

const post = (url: string) =>
  fetch(`${url}/orders`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ item: "lamp", qty: 1 }),
  });

async function ready(url: string) {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, body: await res.text() };
}

test("over TLS (mutual) with SCRAM-SHA-512 an order is published and processed", async () => {
  const prefix = unique("sasl");
  const p = await spawnProgram({
    ...TLS,
    KAFKA_SASL_USERNAME: "svc",
    KAFKA_SASL_PASSWORD: "svc-secret",
    ROLE: "http,consumer",
    REDIS_URL,
    KEY_PREFIX: prefix,
    TOPIC_PREFIX: `${prefix}.`,
  });
  await waitFor(async () => (await ready(p.url)).status === 200, 60_000, "ready", 250);
  const res = await post(p.url);
  assert.is(res.status, 201);
  const order = await res.json();
  await waitFor(
    async () => (await (await fetch(`${p.url}/orders/${order.id}`)).json()).processed === true,
    30_000,
    "the order processed",
    250,
  );
  await superAdmin.deleteTopics({ topics: [`${prefix}.orders`, `${prefix}.orders.dlq`] })
    .catch(() => {});
  assert.is((await p.stop()).code, 0);
  assert.not.match(p.logs.join("\n"), "svc-secret");
});

test("a wrong password: /readyz 503 naming kafka with the broker's reason, 503 on publish, no password in the output", async () => {
  const wrong = `wrong-${crypto.randomUUID()}`;
  const prefix = unique("sasl");
  const p = await spawnProgram({
    ...TLS,
    KAFKA_SASL_USERNAME: "svc",
    KAFKA_SASL_PASSWORD: wrong,
    ROLE: "http,consumer",
    REDIS_URL,
    KEY_PREFIX: prefix,
    TOPIC_PREFIX: `${prefix}.`,
    LOG_LEVEL: "debug",
  });
  let last = { status: 0, body: "" };
  await waitFor(
    async () => {
      last = await ready(p.url);
      return last.status === 503 && /authentication failed/i.test(last.body);
    },
    30_000,
    "readyz 503 with the broker's reason",
    500,
  );
  const body = JSON.parse(last.body);
  assert.ok(body.failing.includes("kafka"), last.body);
  const t0 = Date.now();
  const res = await post(p.url);
  const answer = await res.text();
  assert.is(res.status, 503, answer);
  assert.ok(Date.now() - t0 < 8_000, `answered in ${Date.now() - t0} ms`);
  const metrics = await (await fetch(`${p.url}/metrics`)).text();
  assert.is((await p.stop()).code, 0);
  const everything = [p.logs.join("\n"), last.body, answer, metrics].join("\n");
  assert.not.match(everything, wrong);
  assert.not.match(everything, "svc-secret");
});

test("without the right to create topics: the existing topic is used, the missing .dlq is named in /readyz", async () => {
  const prefix = unique("acl");
  const topic = `${prefix}.orders`;
  await superAdmin.createTopics({ topics: [{ topic, numPartitions: 3 }] });
  onCleanup(() => superAdmin.deleteTopics({ topics: [topic, `${topic}.dlq`] }).catch(() => {}));
  const allow = (
    resourceType: kafkajs.AclResourceTypes,
    operation: kafkajs.AclOperationTypes,
  ) => ({
    resourceType,
    resourceName: prefix,
    resourcePatternType: kafkajs.ResourcePatternTypes.PREFIXED,
    principal: "User:limited",
    host: "*",
    operation,
    permissionType: kafkajs.AclPermissionTypes.ALLOW,
  });
  const { TOPIC, GROUP } = kafkajs.AclResourceTypes;
  const { READ, WRITE, DESCRIBE } = kafkajs.AclOperationTypes;
  const acl = [allow(TOPIC, READ), allow(TOPIC, WRITE), allow(TOPIC, DESCRIBE), allow(GROUP, READ)];
  await superAdmin.createAcls({ acl });
  onCleanup(() => superAdmin.deleteAcls({ filters: acl }).then(() => {}, () => {}));

  const p = await spawnProgram({
    ...TLS,
    KAFKA_SASL_USERNAME: "limited",
    KAFKA_SASL_PASSWORD: "limited-secret",
    ROLE: "http,consumer",
    REDIS_URL,
    KEY_PREFIX: prefix,
    TOPIC_PREFIX: `${prefix}.`,
  });
  let last = { status: 0, body: "" };
  await waitFor(
    async () => {
      last = await ready(p.url);
      return last.status === 503 && last.body.includes(`${topic}.dlq`);
    },
    30_000,
    "readyz naming the missing .dlq topic",
    500,
  );
  assert.not.match(last.body, `"${topic}" does not exist`);
  const res = await post(p.url);
  assert.is(res.status, 201, await res.clone().text());
  const order = await res.json();
  await waitFor(
    async () => (await (await fetch(`${p.url}/orders/${order.id}`)).json()).processed === true,
    30_000,
    "the order processed on the existing topic",
    250,
  );
  // Created by someone who may: readiness comes back without a restart.
  await superAdmin.createTopics({ topics: [{ topic: `${topic}.dlq`, numPartitions: 3 }] });
  await waitFor(async () => (await ready(p.url)).status === 200, 30_000, "ready again", 500);
  const warnings = p.logs.filter((l) => l.includes("may not be created"));
  assert.ok(warnings.length <= 2, `no retry loop: ${warnings.length} warnings`);
  assert.is((await p.stop()).code, 0);
});

test("bad security settings stop start-up with exit 2 and one line naming the variable", async () => {
  const cases: [Record<string, string>, string][] = [
    [{ ...TLS, KAFKA_SSL_CA_FILE: "/nonexistent/ca.pem" }, "KAFKA_SSL_CA_FILE"],
    [{ ...TLS, KAFKA_SSL_KEY_FILE: `${KAFKA_SASL_TLS_DIR}/ca.pem` }, "KAFKA_SSL_KEY_FILE"],
    [{ ...TLS, KAFKA_SASL_USERNAME: "svc" }, "KAFKA_SASL_PASSWORD"],
  ];
  for (const [env, variable] of cases) {
    const out = await runProgram({ ROLE: "http", ...env });
    assert.is(out.code, 2, `${variable}: ${out.stderr}`);
    const lines = (out.stdout + out.stderr).trim().split("\n").filter((l) => l.includes(variable));
    assert.ok(lines.length >= 1, out.stdout + out.stderr);
  }
});

test.run();
