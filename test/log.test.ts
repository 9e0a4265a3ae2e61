import { test } from "uvu";
import * as assert from "uvu/assert";
import { createLogger } from "../src/log.ts";

test("createLogger() writes one JSON line per record with level filtering", () => {
  const lines: string[] = [];
  const log = createLogger("info", { role: "http" }, (l) => lines.push(l));
  log.debug("hidden");
  log.info("shown", { n: 1 });
  assert.is(lines.length, 1);
  const rec = JSON.parse(lines[0]);
  assert.is(rec.msg, "shown");
  assert.is(rec.level, "info");
  assert.is(rec.role, "http");
  assert.is(rec.n, 1);
});

test("createLogger() never writes passwords in URLs or secret fields", () => {
  const lines: string[] = [];
  const log = createLogger("debug", {}, (l) => lines.push(l)).child({ api_keys: ["k1"] });
  log.warn("connect", { url: "redis://u:hunter2@h:6379", authorization: "Bearer k1" });
  assert.not.match(lines[0], /hunter2/);
  assert.not.match(lines[0], /k1/);
});

test("createLogger() writes valid JSON whatever the fields, base fields first", () => {
  const lines: string[] = [];
  const log = createLogger("info", { role: "http" }, (l) => lines.push(l)).child({ instance: "a" });
  log.info('quote " and \\ newline\n', {
    role: "other",
    msg: "x",
    nested: { a: [1, "b"] },
    err: new Error("boom"),
  });
  log.info("plain");
  const rec = JSON.parse(lines[0]);
  assert.is(rec.role, "http");
  assert.is(rec.instance, "a");
  assert.is(rec.msg, 'quote " and \\ newline\n');
  assert.equal(rec.nested, { a: [1, "b"] });
  assert.equal(rec.err, { name: "Error", message: "boom" });
  assert.is(JSON.parse(lines[1]).msg, "plain");
});

test.run();
