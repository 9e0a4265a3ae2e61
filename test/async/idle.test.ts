import { test } from "uvu";
import * as assert from "uvu/assert";
import { IdleWaiters } from "../../src/async/idle.ts";

const settled = async (p: Promise<void>) => {
  let done = false;
  p.then(() => (done = true));
  await Promise.resolve();
  await Promise.resolve();
  return done;
};

test("IdleWaiters: a caller is answered by a pass begun after its call that finds nothing", async () => {
  const waiters = new IdleWaiters();
  const early = waiters.begin(); // a pass under way before the call
  const caughtUp = waiters.next();
  assert.ok(waiters.waiting);
  early(true);
  assert.not.ok(await settled(caughtUp), "the pass begun before the call answers no one");
  const busy = waiters.begin();
  busy(false);
  assert.not.ok(await settled(caughtUp), "a pass that found work answers no one");
  assert.ok(waiters.waiting, "the caller waits for a later pass");
  waiters.begin()(true);
  assert.ok(await settled(caughtUp));
  assert.not.ok(waiters.waiting);
});

test("IdleWaiters: releaseAll answers every caller", async () => {
  const waiters = new IdleWaiters();
  const a = waiters.next(), b = waiters.next();
  waiters.releaseAll();
  assert.ok(await settled(a));
  assert.ok(await settled(b));
});

test.run();
