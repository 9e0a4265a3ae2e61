import { test } from "uvu";
import * as assert from "uvu/assert";
import { deadline, DeadlineError, settleBy } from "../../src/async/deadline.ts";

const never = new Promise<never>(() => {});

test("deadline() resolves and rejects as the work does when it settles in time", async () => {
  assert.is(await deadline(Promise.resolve(7), 1000), 7);
  const err = await deadline(Promise.reject(new Error("boom")), 1000).catch((e) => e);
  assert.is(err.message, "boom");
});

test("deadline() rejects with a DeadlineError, or the given error, once the bound passed", async () => {
  const err = await deadline(never, 0).catch((e) => e);
  assert.instance(err, DeadlineError);
  assert.is(err.message, "Timed out after 0 ms");
  const mine = await deadline(never, 0, () => new RangeError("late")).catch((e) => e);
  assert.instance(mine, RangeError);
});

test("settleBy() is true when the work settles (even rejected), false past the deadline", async () => {
  assert.is(await settleBy(undefined, 0), true);
  assert.is(await settleBy(Promise.reject(new Error("x")), Date.now() + 1000), true);
  assert.is(await settleBy(never, Date.now()), false);
  assert.is(await settleBy(never, Date.now() - 5000), false);
});

test.run();
