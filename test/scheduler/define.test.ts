import { test } from "uvu";
import * as assert from "uvu/assert";
import { DEFAULT_CATCH_UP_WINDOW_MS, defineSchedule } from "../../src/scheduler/define.ts";

test("defineSchedule() fills the documented defaults", () => {
  const def = defineSchedule({ name: "beat", cron: " */30 * * * * * ", action: () => {} });
  assert.is(def.kind, "schedule");
  assert.is(def.cron, "*/30 * * * * *");
  assert.is(def.timezone, "UTC");
  assert.is(def.overlap, "skip");
  assert.is(def.missed, "latest");
  assert.is(def.catchUpWindowMs, DEFAULT_CATCH_UP_WINDOW_MS);
  assert.is(DEFAULT_CATCH_UP_WINDOW_MS, 3_600_000);
});

test("defineSchedule() names the schedule in every error", () => {
  const base = { name: "x", cron: "* * * * *", action: () => {} };
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ name: "has space" }, /Schedule name "has space" is invalid/],
    [{ cron: "* * *" }, /Schedule "x": "\* \* \*" has 3 fields/],
    [{ cron: "99 * * * *" }, /Schedule "x": .*not a valid cron/],
    [{ timezone: "Moon/Base" }, /Schedule "x": "Moon\/Base" is not an IANA time zone/],
    [{ overlap: "queue" }, /overlap must be "skip" or "allow"/],
    [{ missed: "some" }, /missed must be "skip", "latest" or "all"/],
    [{ catchUpWindowMs: -1 }, /catchUpWindowMs must be a number >= 0/],
    [{ action: { nothing: 1 } }, /action must be a function, \{enqueue\}, \{publish\} or \{http\}/],
    [{ action: { http: { url: "ftp://x" } } }, /http.url must be an http/],
    [{ action: { http: { url: "http://x", retries: -1 } } }, /http.retries must be a number >= 0/],
  ];
  for (const [patch, message] of bad) {
    assert.throws(() => defineSchedule({ ...base, ...patch } as never), message, String(message));
  }
});

test("defineSchedule() accepts the four kinds of action", () => {
  for (
    const action of [
      () => {},
      { enqueue: "orders-report", input: {} },
      { publish: "ticks" },
      { http: { url: "https://example.com/hook", timeoutMs: 1000, retries: 1 } },
    ]
  ) {
    assert.equal(defineSchedule({ name: "x", cron: "* * * * *", action }).action, action);
  }
});

test.run();
