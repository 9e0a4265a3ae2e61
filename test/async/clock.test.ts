import { test } from "uvu";
import * as assert from "uvu/assert";
import { ManualClock, systemClock } from "../../src/async/clock.ts";

test("systemClock.sleepUntil() wakes at the instant, and at once when aborted", async () => {
  const target = Date.now() + 60;
  await systemClock.sleepUntil(target);
  assert.ok(Date.now() >= target);
  const controller = new AbortController();
  const started = Date.now();
  setTimeout(() => controller.abort(), 20);
  await systemClock.sleepUntil(Date.now() + 60_000, controller.signal);
  assert.ok(Date.now() - started < 1000);
  await systemClock.sleepUntil(Date.now() - 1000); // past: returns at once
});

test("ManualClock.advance() wakes sleepers in time order, each at its own time", async () => {
  const clock = new ManualClock("2025-01-01T00:00:00Z", 50);
  const t0 = clock.now();
  const woke: [string, number][] = [];
  const sleep = (name: string, at: number) =>
    clock.sleepUntil(at).then(() => void woke.push([name, clock.now() - t0]));
  sleep("b", t0 + 2000);
  sleep("a", t0 + 1000);
  sleep("late", t0 + 9000);
  assert.is(clock.pending, 3);
  assert.is(clock.nextWakeUp, t0 + 1000);
  await clock.advance(5000);
  assert.equal(woke, [["a", 1000], ["b", 2000]]);
  assert.is(clock.now(), t0 + 5000);
  assert.is(clock.pending, 1);
});

test("ManualClock.advance() lets woken code sleep again before moving on", async () => {
  const clock = new ManualClock(0, 1000);
  const ticks: number[] = [];
  const controller = new AbortController();
  (async () => {
    for (let next = 1000; !controller.signal.aborted; next += 1000) {
      await clock.sleepUntil(next, controller.signal);
      if (controller.signal.aborted) break;
      await new Promise((r) => setTimeout(r, 1)); // some I/O
      ticks.push(clock.now());
    }
  })();
  await clock.advance(5500);
  controller.abort();
  assert.equal(ticks, [1000, 2000, 3000, 4000, 5000]);
});

test("ManualClock.jumpTo() wakes every due sleeper at the new time", async () => {
  const clock = new ManualClock(0, 50);
  const woke: number[] = [];
  clock.sleepUntil(1000).then(() => woke.push(clock.now()));
  clock.sleepUntil(2000).then(() => woke.push(clock.now()));
  await clock.jumpTo(2500);
  assert.equal(woke, [2500, 2500]);
});

test.run();
