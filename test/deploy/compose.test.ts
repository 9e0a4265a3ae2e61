/**
 * @module Checks compose.yaml: Redis, Kafka and one service per role, all from the one image.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parse } from "yaml";
import { loadConfig, ROLES } from "../../src/config.ts";

// `merge: true` resolves the `<<: *svc` merge keys the way Compose does.
const compose = parse(
  await Deno.readTextFile(new URL("../../compose.yaml", import.meta.url)),
  { merge: true },
);
const services = Object.entries(compose.services as Record<string, any>);
/** A service's environment as a map, from Compose's map or `KEY=value` list form. */
const envOf = (s: any): Record<string, string> =>
  Array.isArray(s.environment)
    ? Object.fromEntries(s.environment.map((kv: string) => kv.split(/=(.*)/s).slice(0, 2)))
    : Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v)]));

test("compose.yaml runs Redis and Kafka", () => {
  assert.ok(compose.services.redis?.image?.startsWith("redis:"));
  assert.ok(compose.services.kafka?.image?.includes("kafka"));
});

test("compose.yaml has exactly one service per role, with ROLE set to that role", () => {
  for (const role of ROLES) {
    const withRole = services.filter(([, s]) => envOf(s).ROLE === role);
    assert.is(withRole.length, 1, `one service with ROLE=${role}`);
    assert.is(withRole[0][0], role, "the service is named after its role");
  }
  const roleServices = services.filter(([, s]) => envOf(s).ROLE !== undefined);
  assert.is(roleServices.length, ROLES.length, "no other service sets ROLE");
});

test("every role service runs svc:latest on real brokers with a valid configuration", () => {
  for (const [name, s] of services.filter(([, s]) => envOf(s).ROLE !== undefined)) {
    assert.is(s.image, "svc:latest", name);
    const config = loadConfig(envOf(s));
    assert.equal(config.roles, [name]);
    assert.ok(config.redisUrl && config.kafkaBrokers, `${name} uses Redis and Kafka`);
    assert.equal(Object.keys(s.depends_on ?? {}).sort(), ["kafka", "redis"], name);
  }
});

test("the public port is a proxy's that bounds header, body and idle time", async () => {
  const proxy = compose.services.proxy;
  assert.ok(proxy.image.startsWith("nginx:"));
  assert.equal(proxy.ports, ["8080:8080"]);
  assert.is(compose.services.http.ports, undefined, "the http role is reached through the proxy");
  const [file] = proxy.volumes[0].split(":");
  const conf = await Deno.readTextFile(new URL(`../../${file.replace("./", "")}`, import.meta.url));
  for (const directive of ["client_header_timeout", "client_body_timeout", "keepalive_timeout"]) {
    const value = new RegExp(`\\b${directive} (\\d+)s;`).exec(conf)?.[1];
    assert.ok(value && Number(value) <= 60, `${directive} ${value}`);
  }
  assert.match(conf, /client_max_body_size 1m;/);
  assert.match(conf, /proxy_pass http:\/\/svc_http;/);
  assert.match(conf, /server http:8080;/);
  assert.match(conf, /error_page 494 =431/);
});

test.run();
