import { test } from "uvu";
import * as assert from "uvu/assert";
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
});

test.run();
