import { test } from "uvu";
import * as assert from "uvu/assert";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { System } from "../../src/system.ts";
import { defineSchedule } from "../../src/scheduler/define.ts";
import { validateSchedules } from "../../src/scheduler/overrides.ts";
import { scheduleSystem } from "./fixtures/schedules.ts";

test("validateSchedules() applies SCHEDULE_<NAME>_CRON, with - turned into _", () => {
  const resolved = validateSchedules(
    scheduleSystem(),
    loadConfig({ SCHEDULE_ORDERS_REPORT_NIGHTLY_CRON: "15 3 * * *" }),
  );
  const nightly = resolved.get("orders-report-nightly")!;
  assert.is(nightly.cron, "15 3 * * *");
  assert.is(nightly.enabled, true);
  assert.is(nightly.variable, "SCHEDULE_ORDERS_REPORT_NIGHTLY_CRON");
  assert.is(
    new Date(nightly.parsed!.next(Date.parse("2025-01-01T00:00:00Z"))).toISOString(),
    "2025-01-01T03:15:00.000Z",
  );
  assert.is(resolved.get("heartbeat")!.cron, "*/30 * * * * *");
});

test("validateSchedules() disables a schedule with off, in any case", () => {
  for (const off of ["off", "OFF", " Off "]) {
    const h = validateSchedules(scheduleSystem(), loadConfig({ SCHEDULE_HEARTBEAT_CRON: off })).get(
      "heartbeat",
    )!;
    assert.is(h.enabled, false);
    assert.is(h.parsed, null);
  }
});

test("validateSchedules() throws ConfigError naming the variable for an invalid cron", () => {
  for (const bad of ["not a cron", "* * * *", "61 * * * *", "* * * * * * *"]) {
    try {
      validateSchedules(scheduleSystem(), loadConfig({ SCHEDULE_HEARTBEAT_CRON: bad }));
      assert.unreachable(bad);
    } catch (err) {
      assert.instance(err, ConfigError);
      assert.is((err as ConfigError).variable, "SCHEDULE_HEARTBEAT_CRON");
      assert.match((err as Error).message, /^SCHEDULE_HEARTBEAT_CRON: /);
    }
  }
});

test("validateSchedules() rejects an override that names no schedule", () => {
  try {
    validateSchedules(scheduleSystem(), loadConfig({ SCHEDULE_HEARTBEET_CRON: "* * * * *" }));
    assert.unreachable();
  } catch (err) {
    assert.instance(err, ConfigError);
    assert.is((err as ConfigError).variable, "SCHEDULE_HEARTBEET_CRON");
    assert.match((err as Error).message, /"heartbeat", "orders-report-nightly"/);
  }
});

test("validateSchedules() rejects two names that share a variable", () => {
  const s = new System().add(
    defineSchedule({ name: "a-b", cron: "* * * * *", action: () => {} }),
    defineSchedule({ name: "a_b", cron: "* * * * *", action: () => {} }),
  );
  assert.throws(() => validateSchedules(s, loadConfig({})), /share the variable SCHEDULE_A_B_CRON/);
});

test.run();
