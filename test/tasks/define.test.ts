import { test } from "uvu";
import * as assert from "uvu/assert";
import * as v from "valibot";
import { defineTask, exponentialBackoff, TASK_DEFAULTS } from "../../src/tasks/define.ts";

test("defineTask() fills in the documented defaults", () => {
  const def = defineTask({ name: "a.b-c_1", input: v.unknown(), handler: () => 1 });
  assert.equal(
    [def.kind, def.attempts, def.timeoutMs, def.resultTtlMs, def.concurrency],
    ["task", 3, TASK_DEFAULTS.timeoutMs, TASK_DEFAULTS.resultTtlMs, 10],
  );
  const first = def.backoff(1);
  assert.ok(first >= 800 && first <= 1200, `${first}`);
});

test("defineTask() rejects bad names and options", () => {
  for (const name of ["", "-x", "a/b", "a b", "x".repeat(65)]) {
    assert.throws(() => defineTask({ name, input: v.unknown(), handler: () => 1 }), /must match/);
  }
  for (const option of ["attempts", "timeoutMs", "resultTtlMs", "concurrency"]) {
    assert.throws(
      () => defineTask({ name: "x", input: v.unknown(), handler: () => 1, [option]: 0 }),
      new RegExp(`${option} must be a positive integer`),
    );
  }
});

test("defineTask() takes a backoff function as is", () => {
  const def = defineTask({
    name: "x",
    input: v.unknown(),
    handler: () => 1,
    backoff: (n) => n * 7,
  });
  assert.is(def.backoff(3), 21);
});

test("exponentialBackoff() doubles, caps, and spreads ±20 %", () => {
  const mid = exponentialBackoff(200, 1000, () => 0.5);
  assert.equal([1, 2, 3, 4, 10].map(mid), [200, 400, 800, 1000, 1000]);
  assert.is(exponentialBackoff(200, 1000, () => 0)(1), 160);
  assert.is(exponentialBackoff(200, 1000, () => 0.999999)(1), 240);
});

test.run();
