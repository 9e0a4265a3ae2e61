import { test } from "uvu";
import * as assert from "uvu/assert";
import { ManualClock } from "../../src/async/clock.ts";
import { delay } from "../../src/async/delay.ts";

test("delay() waits on the given clock and is true when the time passed", async () => {
  const clock = new ManualClock(0, 50);
  let done: boolean | undefined;
  const waiting = delay(5000, { clock }).then((full) => (done = full));
  await clock.advance(4999);
  assert.is(done, undefined);
  await clock.advance(1);
  await waiting;
  assert.is(done, true);
});

test("delay() is false when aborted, before or during the wait", async () => {
  const clock = new ManualClock(0, 50);
  const controller = new AbortController();
  const waiting = delay(60_000, { clock, signal: controller.signal });
  controller.abort();
  assert.is(await waiting, false);
  assert.is(await delay(10, { signal: controller.signal }), false);
  assert.is(clock.pending, 0);
});

test("delay() of zero or less returns at once", async () => {
  assert.is(await delay(0), true);
  assert.is(await delay(-5, { clock: new ManualClock(0) }), true);
});

test.run();
