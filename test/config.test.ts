import { test } from "uvu";
import * as assert from "uvu/assert";
import { parseRedisUrl } from "../src/infra/redis-url.ts";
import { ConfigError, loadConfig, redactUrl, ROLES, scheduleCronVariable } from "../src/config.ts";

const fails = (env: Record<string, string>, variable: string) => {
  try {
    loadConfig(env);
  } catch (err) {
    assert.instance(err, ConfigError);
    assert.is((err as ConfigError).variable, variable);
    assert.ok((err as Error).message.startsWith(`${variable}: `), (err as Error).message);
    assert.not.match((err as Error).message, /\n/);
    return (err as Error).message;
  }
  assert.unreachable(`expected ${variable} to be rejected`);
};

test("loadConfig() applies API.md's defaults", () => {
  const c = loadConfig({});
  assert.equal(c.roles, [...ROLES]);
  assert.is(c.port, 8080);
  assert.is(c.redisUrl, undefined);
  assert.is(c.kafkaBrokers, undefined);
  assert.is(c.keyPrefix, "svc");
  assert.is(c.topicPrefix, "");
  assert.equal(c.apiKeys, []);
  assert.is(c.logLevel, "info");
  assert.is(c.shutdownTimeoutMs, 25000);
  assert.ok(c.parallelMaxWorkers >= 1);
});

test("loadConfig() reads SERVICE_NAME, HOST and BODY_LIMIT_BYTES, with API.md's defaults", () => {
  const d = loadConfig({});
  assert.equal([d.serviceName, d.host, d.bodyLimitBytes], ["svc", "0.0.0.0", 1048576]);
  const c = loadConfig({ SERVICE_NAME: "billing", HOST: "::1", BODY_LIMIT_BYTES: "2048" });
  assert.equal([c.serviceName, c.host, c.bodyLimitBytes], ["billing", "::1", 2048]);
  assert.is(loadConfig({ HOST: "127.0.0.1" }).host, "127.0.0.1");
  assert.is(loadConfig({ HOST: "api.internal" }).host, "api.internal");
  fails({ SERVICE_NAME: "has space" }, "SERVICE_NAME");
  fails({ HOST: "http://x" }, "HOST");
  fails({ BODY_LIMIT_BYTES: "0" }, "BODY_LIMIT_BYTES");
  fails({ BODY_LIMIT_BYTES: "1MB" }, "BODY_LIMIT_BYTES");
});

test("loadConfig() tells an explicit ROLE from `all`", () => {
  assert.is(loadConfig({}).rolesExplicit, false);
  assert.is(loadConfig({ ROLE: "all" }).rolesExplicit, false);
  assert.is(loadConfig({ ROLE: "http,consumer" }).rolesExplicit, true);
});

test("loadConfig() reads a comma list of roles and `all`", () => {
  assert.equal(loadConfig({ ROLE: "http, consumer" }).roles, ["http", "consumer"]);
  assert.equal(loadConfig({ ROLE: "all" }).roles, [...ROLES]);
});

test("loadConfig() rejects an unknown role naming ROLE", () => {
  assert.match(fails({ ROLE: "bogus" }, "ROLE")!, /"bogus"/);
  fails({ ROLE: "http,bogus" }, "ROLE");
});

test("loadConfig() rejects a non-numeric or out-of-range PORT", () => {
  assert.match(fails({ PORT: "abc" }, "PORT")!, /integer/);
  fails({ PORT: "70000" }, "PORT");
  fails({ PORT: "-1" }, "PORT");
});

test("loadConfig() rejects a malformed REDIS_URL without echoing it", () => {
  const msg = fails({ REDIS_URL: "http://user:secret@host" }, "REDIS_URL")!;
  assert.not.match(msg, /secret/);
  fails({ REDIS_URL: "not a url" }, "REDIS_URL");
  assert.is(
    loadConfig({ REDIS_URL: "rediss://:pw@cache:6380/1" }).redisUrl,
    "rediss://:pw@cache:6380/1",
  );
});

test("loadConfig() validates KAFKA_BROKERS, LOG_LEVEL and the numeric settings", () => {
  assert.equal(loadConfig({ KAFKA_BROKERS: "a:9092, b:9093" }).kafkaBrokers, ["a:9092", "b:9093"]);
  fails({ KAFKA_BROKERS: "nohost" }, "KAFKA_BROKERS");
  fails({ LOG_LEVEL: "loud" }, "LOG_LEVEL");
  fails({ PARALLEL_MAX_WORKERS: "0" }, "PARALLEL_MAX_WORKERS");
  fails({ SHUTDOWN_TIMEOUT_MS: "soon" }, "SHUTDOWN_TIMEOUT_MS");
  fails({ KEY_PREFIX: "has space" }, "KEY_PREFIX");
});

test("loadConfig() collects SCHEDULE_<NAME>_CRON overrides", () => {
  const c = loadConfig({
    SCHEDULE_ORDERS_REPORT_NIGHTLY_CRON: "off",
    SCHEDULE_HEARTBEAT_CRON: "* * * * * *",
  });
  assert.equal(c.scheduleCron, { ORDERS_REPORT_NIGHTLY: "off", HEARTBEAT: "* * * * * *" });
  assert.is(scheduleCronVariable("orders-report-nightly"), "SCHEDULE_ORDERS_REPORT_NIGHTLY_CRON");
});

test("redactUrl() hides the password", () => {
  assert.is(redactUrl("redis://user:hunter2@h:6379"), "redis://user:***@h:6379");
  assert.is(redactUrl("redis://hunter2@h:6379"), "redis://***@h:6379");
  assert.is(
    redactUrl("rediss+sentinel://u:hunter2@s1:26379,s2:26379/main"),
    "rediss+sentinel://u:***@s1:26379,s2:26379/main",
  );
  assert.is(redactUrl("redis://:hunter2@a:7000,b:7001"), "redis://:***@a:7000,b:7001");
});

test("REDIS_URL: cluster seeds and sentinel forms are read; bad ones name the problem", () => {
  assert.equal(parseRedisUrl("redis://:pw@a:7000,b:7001"), {
    kind: "direct",
    tls: false,
    password: "pw",
    nodes: [{ host: "a", port: 7000 }, { host: "b", port: 7001 }],
  });
  assert.equal(parseRedisUrl("rediss+sentinel://u:p%40ss@s1,[::1]:26380/main"), {
    kind: "sentinel",
    tls: true,
    username: "u",
    password: "p@ss",
    nodes: [{ host: "s1", port: 26379 }, { host: "::1", port: 26380 }],
    master: "main",
  });
  assert.is(parseRedisUrl("redis://h/2").database, 2);
  assert.is(
    loadConfig({ REDIS_URL: "redis+sentinel://s1:26379,s2:26379/main" }).redisUrl,
    "redis+sentinel://s1:26379,s2:26379/main",
  );
  const noMaster = fails({ REDIS_URL: "redis+sentinel://:secret@s1:26379" }, "REDIS_URL")!;
  assert.match(noMaster, /master-name/);
  assert.not.match(noMaster, /secret/);
  fails({ REDIS_URL: "redis://a:7000,b:99999" }, "REDIS_URL");
  fails({ REDIS_URL: "redis://h/x" }, "REDIS_URL");
});

test("REDIS_WAIT_*, REDIS_TLS_CA_FILE: defaults, bounds, an unreadable CA file stops start-up", () => {
  const c = loadConfig({});
  assert.is(c.redisWaitReplicas, 0);
  assert.is(c.redisWaitTimeoutMs, 1000);
  assert.is(c.redisTlsCa, undefined);
  assert.is(loadConfig({ REDIS_WAIT_REPLICAS: "2" }).redisWaitReplicas, 2);
  fails({ REDIS_WAIT_REPLICAS: "-1" }, "REDIS_WAIT_REPLICAS");
  fails({ REDIS_WAIT_TIMEOUT_MS: "0" }, "REDIS_WAIT_TIMEOUT_MS");
  assert.match(
    fails({ REDIS_TLS_CA_FILE: "/nonexistent/ca.pem" }, "REDIS_TLS_CA_FILE")!,
    /cannot read/,
  );
  const notPem = Deno.makeTempFileSync();
  Deno.writeTextFileSync(notPem, "hello");
  assert.match(fails({ REDIS_TLS_CA_FILE: notPem }, "REDIS_TLS_CA_FILE")!, /no PEM/);
  Deno.removeSync(notPem);
});

test("loadConfig() reads the Kafka security and topic settings", () => {
  const dir = Deno.makeTempDirSync();
  const ca = `${dir}/ca.pem`;
  Deno.writeTextFileSync(ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
  const key = `${dir}/key.pem`;
  Deno.writeTextFileSync(key, "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n");
  const c = loadConfig({
    KAFKA_SSL: "true",
    KAFKA_SSL_CA_FILE: ca,
    KAFKA_SSL_CERT_FILE: ca,
    KAFKA_SSL_KEY_FILE: key,
    KAFKA_SASL_MECHANISM: "SCRAM-SHA-512",
    KAFKA_SASL_USERNAME: "svc",
    KAFKA_SASL_PASSWORD: "pw",
    KAFKA_REPLICATION_FACTOR: "2",
    KAFKA_PARTITIONS: "12",
  });
  assert.match(c.kafka.ssl!.ca!, /BEGIN CERTIFICATE/);
  assert.match(c.kafka.ssl!.key!, /BEGIN PRIVATE KEY/);
  assert.equal(c.kafka.sasl, { mechanism: "scram-sha-512", username: "svc", password: "pw" });
  assert.is(c.kafka.replicationFactor, 2);
  assert.is(c.kafka.partitions, 12);
  const d = loadConfig({});
  assert.is(d.kafka.ssl, undefined);
  assert.is(d.kafka.sasl, undefined);
  assert.is(d.kafka.replicationFactor, undefined);
  assert.is(d.kafka.partitions, 3);
  assert.equal(loadConfig({ KAFKA_SSL: "true" }).kafka.ssl, {});
  Deno.removeSync(dir, { recursive: true });
});

test("loadConfig() rejects bad Kafka security settings naming the variable, never the password", () => {
  fails({ KAFKA_SSL: "yes" }, "KAFKA_SSL");
  assert.match(
    fails({ KAFKA_SSL: "true", KAFKA_SSL_CA_FILE: "/nonexistent/ca.pem" }, "KAFKA_SSL_CA_FILE")!,
    /cannot read/,
  );
  fails({ KAFKA_SSL_CA_FILE: "/etc/hostname" }, "KAFKA_SSL_CA_FILE");
  assert.match(
    fails({ KAFKA_SSL: "true", KAFKA_SSL_CA_FILE: "/etc/hostname" }, "KAFKA_SSL_CA_FILE")!,
    /no PEM/,
  );
  fails({ KAFKA_SSL: "true", KAFKA_SSL_CERT_FILE: "/etc/hostname" }, "KAFKA_SSL_KEY_FILE");
  fails({ KAFKA_SASL_MECHANISM: "gssapi" }, "KAFKA_SASL_MECHANISM");
  fails({ KAFKA_SASL_MECHANISM: "plain" }, "KAFKA_SASL_USERNAME");
  const msg = fails(
    { KAFKA_SASL_MECHANISM: "plain", KAFKA_SASL_USERNAME: "u" },
    "KAFKA_SASL_PASSWORD",
  )!;
  assert.match(msg, /required/);
  assert.not.match(
    fails({ KAFKA_SASL_PASSWORD: "hunter2-secret" }, "KAFKA_SASL_PASSWORD")!,
    /hunter2/,
  );
  fails({ KAFKA_REPLICATION_FACTOR: "0" }, "KAFKA_REPLICATION_FACTOR");
  fails({ KAFKA_PARTITIONS: "x" }, "KAFKA_PARTITIONS");
});

test.run();
