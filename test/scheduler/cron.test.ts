import { test } from "uvu";
import * as assert from "uvu/assert";
import { Cron, CronError } from "../../src/scheduler/cron.ts";

const NY = "America/New_York";
const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();
const ticks = (cron: Cron, from: string, to: string) =>
  cron.between(at(from), at(to), { inclusive: true }).ticks.map(iso);

test("parse() takes 5 fields, or 6 with seconds", () => {
  assert.is(
    iso(Cron.parse("0 2 * * *").next(at("2025-01-01T03:00:00Z"))),
    "2025-01-02T02:00:00.000Z",
  );
  assert.is(
    iso(Cron.parse("*/30 * * * * *").next(at("2025-01-01T00:00:00.500Z"))),
    "2025-01-01T00:00:30.000Z",
  );
});

test("parse() rejects 4 or 7 fields, bad values and unknown zones", () => {
  for (const bad of ["* * * *", "", "* * * * * * *", "61 * * * *", "0 0 31 2 *", "*/0 * * * *"]) {
    assert.throws(() => Cron.parse(bad), (e: unknown) => e instanceof CronError, bad);
  }
  assert.throws(() => Cron.parse("* * * * *", "Mars/Olympus"), /IANA time zone/);
});

test("next() is strictly after the given instant", () => {
  const cron = Cron.parse("* * * * * *");
  assert.is(cron.next(at("2025-01-01T00:00:01Z")), at("2025-01-01T00:00:02Z"));
  assert.is(cron.next(at("2025-01-01T00:00:01.999Z")), at("2025-01-01T00:00:02Z"));
});

test("next() runs a 02:30 New York job once, at 03:30 EDT, on the spring-forward day", () => {
  const cron = Cron.parse("30 2 * * *", NY);
  assert.equal(ticks(cron, "2025-03-08T00:00:00Z", "2025-03-11T00:00:00Z"), [
    "2025-03-08T07:30:00.000Z", // 02:30 EST
    "2025-03-09T07:30:00.000Z", // 03:30 EDT: 02:30 does not exist
    "2025-03-10T06:30:00.000Z", // 02:30 EDT
  ]);
  // Wherever the walk starts on that day, the answer is the same.
  for (const from of ["2025-03-09T06:00:00Z", "2025-03-09T07:00:00Z", "2025-03-09T07:10:00Z"]) {
    assert.is(iso(cron.next(at(from))), "2025-03-09T07:30:00.000Z", from);
  }
});

test("next() runs a 01:30 New York job once on the fall-back day, whatever the start", () => {
  const cron = Cron.parse("30 1 * * *", NY);
  assert.equal(ticks(cron, "2025-11-01T00:00:00Z", "2025-11-04T00:00:00Z"), [
    "2025-11-01T05:30:00.000Z",
    "2025-11-02T05:30:00.000Z", // 01:30 EDT; 01:30 EST (06:30Z) does not run
    "2025-11-03T06:30:00.000Z",
  ]);
  for (const from of ["2025-11-02T05:30:00Z", "2025-11-02T06:00:00Z", "2025-11-02T06:29:59Z"]) {
    assert.is(iso(cron.next(at(from))), "2025-11-03T06:30:00.000Z", from);
  }
});

test("next() runs a 02:30 New York job once on the fall-back day", () => {
  const cron = Cron.parse("30 2 * * *", NY);
  assert.equal(ticks(cron, "2025-11-01T12:00:00Z", "2025-11-03T12:00:00Z"), [
    "2025-11-02T07:30:00.000Z",
    "2025-11-03T07:30:00.000Z",
  ]);
});

test("next() keeps an hourly job's pace in elapsed time through fall-back", () => {
  const cron = Cron.parse("0 * * * *", NY);
  assert.equal(ticks(cron, "2025-11-02T04:30:00Z", "2025-11-02T07:30:00Z"), [
    "2025-11-02T05:00:00.000Z", // 01:00 EDT
    "2025-11-02T06:00:00.000Z", // 01:00 EST
    "2025-11-02T07:00:00.000Z", // 02:00 EST
  ]);
  assert.is(iso(cron.next(at("2025-11-02T06:10:00Z"))), "2025-11-02T07:00:00.000Z");
});

test("between() keeps the newest ticks and counts them all", () => {
  const cron = Cron.parse("* * * * * *");
  const r = cron.between(at("2025-01-01T00:00:00Z"), at("2025-01-01T00:00:10Z"), { keep: 2 });
  assert.is(r.total, 9);
  assert.equal(r.ticks.map(iso), ["2025-01-01T00:00:08.000Z", "2025-01-01T00:00:09.000Z"]);
  const all = cron.between(at("2025-01-01T00:00:00Z"), at("2025-01-01T00:00:10Z"), {
    inclusive: true,
  });
  assert.is(all.total, 10);
});

test("cursor.nextAfter() steps forward and jumps far without walking every tick", () => {
  const cron = Cron.parse("* * * * * *");
  const cursor = cron.cursor(at("2025-01-01T00:00:00Z"));
  assert.is(cursor.next(), at("2025-01-01T00:00:01Z"));
  assert.is(cursor.nextAfter(at("2025-01-01T00:00:05Z")), at("2025-01-01T00:00:06Z"));
  const started = performance.now();
  assert.is(cursor.nextAfter(at("2025-02-01T00:00:00Z")), at("2025-02-01T00:00:01Z"));
  assert.ok(performance.now() - started < 1000);
  // Never goes back.
  assert.is(cursor.nextAfter(at("2025-01-01T00:00:00Z")), at("2025-02-01T00:00:02Z"));
});

test("offset() reads the zone's offset", () => {
  const cron = Cron.parse("* * * * *", NY);
  assert.is(cron.offset(at("2025-01-15T12:00:00Z")), -5 * 3600_000);
  assert.is(cron.offset(at("2025-07-15T12:00:00Z")), -4 * 3600_000);
  assert.is(Cron.parse("* * * * *").offset(Date.now()), 0);
});

test.run();
