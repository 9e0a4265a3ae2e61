import { test } from "uvu";
import * as assert from "uvu/assert";
import { ManualClock } from "../../src/async/clock.ts";
import { Loop } from "../../src/async/loop.ts";

test("Loop runs a pass every everyMs on its clock, and stop() ends it", async () => {
  const clock = new ManualClock(0, 200);
  const passes: number[] = [];
  const loop = new Loop(() => void passes.push(clock.now()), { everyMs: 1000, clock });
  loop.start();
  await clock.advance(3500);
  assert.equal(passes, [1000, 2000, 3000]);
  await loop.stop();
  assert.is(loop.running, false);
  await clock.advance(5000);
  assert.equal(passes, [1000, 2000, 3000]);
});

test("Loop: immediate runs at once; a returned number is the next wait", async () => {
  const clock = new ManualClock(0, 200);
  const passes: number[] = [];
  const loop = new Loop(() => {
    passes.push(clock.now());
    return passes.length < 3 ? 0 : undefined;
  }, { everyMs: 1000, clock, immediate: true });
  loop.start();
  await new Promise((r) => setTimeout(r, 0)); // the loop runs its first passes and sleeps
  await clock.advance(1000);
  assert.equal(passes, [0, 0, 0, 1000]);
  await loop.stop();
});

test("Loop.wake() ends the wait, or skips the next when called during a pass", async () => {
  const clock = new ManualClock(0, 200);
  const passes: number[] = [];
  let wakeDuringPass = false;
  const loop = new Loop(() => {
    passes.push(clock.now());
    if (wakeDuringPass) {
      wakeDuringPass = false;
      loop.wake();
    }
  }, { everyMs: 1000, clock });
  loop.start();
  await clock.advance(10);
  loop.wake();
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(passes, [10]);
  wakeDuringPass = true;
  await clock.advance(1000);
  assert.equal(passes, [10, 1010, 1010]);
  await loop.stop();
});

test("Loop: a pass's late is how far past its planned time it started; errors go to onError", async () => {
  const clock = new ManualClock(0, 200);
  const lates: number[] = [];
  const errors: unknown[] = [];
  const loop = new Loop(({ late }) => {
    lates.push(late);
    throw new Error("pass failed");
  }, { everyMs: 1000, clock, onError: (err) => errors.push(err) });
  loop.start();
  await clock.jumpTo(1700);
  assert.equal(lates, [700]);
  assert.is(errors.length, 1);
  await loop.stop();
});

test("Loop.stop() aborts the pass's signal and waits for the pass to end", async () => {
  let ended = false;
  const loop = new Loop(async ({ signal }) => {
    await new Promise((r) => signal.addEventListener("abort", r));
    ended = true;
  }, { everyMs: 10, immediate: true });
  loop.start();
  await new Promise((r) => setTimeout(r, 0));
  await loop.stop();
  assert.ok(ended);
});

test.run();
