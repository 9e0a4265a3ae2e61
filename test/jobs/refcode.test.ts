import { test } from "uvu";
import * as assert from "uvu/assert";
import { Refcodes, RUN_REFCODES, TASK_REFCODES } from "../../src/jobs/refcode.ts";

test("Refcodes.make() gives the prefix and 26 base32 characters (130 random bits)", () => {
  const task = TASK_REFCODES.make();
  assert.match(task, /^t_[a-z2-7]{26}$/);
  assert.ok(TASK_REFCODES.test(task));
  const run = RUN_REFCODES.make();
  assert.match(run, /^p_[a-z2-7]{26}$/);
  assert.ok(RUN_REFCODES.test(run));
});

test("Refcodes.test() takes only its own kind's shape", () => {
  assert.not.ok(TASK_REFCODES.test(RUN_REFCODES.make()));
  assert.not.ok(RUN_REFCODES.test(TASK_REFCODES.make()));
  for (const bad of ["", "t_", "t_short", `t_${"A".repeat(26)}`, `t_${"a".repeat(27)}`]) {
    assert.not.ok(TASK_REFCODES.test(bad), bad);
  }
  assert.throws(() => new Refcodes("T"), /not a-z/);
});

test("Refcodes.make() shows no shared prefix or order between consecutive codes", () => {
  const refs = Array.from({ length: 2000 }, () => TASK_REFCODES.make());
  assert.is(new Set(refs).size, refs.length);
  // Every position takes many values: nothing is a counter or a timestamp.
  for (let i = 2; i < 28; i++) {
    const seen = new Set(refs.map((r) => r[i]));
    assert.ok(seen.size >= 30, `position ${i} has ${seen.size} values`);
  }
  const sorted = [...refs].sort();
  assert.not.equal(sorted, refs);
});

test.run();
