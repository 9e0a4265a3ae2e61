import { test } from "uvu";
import * as assert from "uvu/assert";
import { backoff } from "../../src/async/backoff.ts";

test("backoff() doubles from initialMs and caps at maxMs", () => {
  const opts = { initialMs: 100, maxMs: 1000, random: () => 0.5 };
  assert.equal([0, 1, 2, 3, 4, 5, 1e6].map((n) => backoff(n, opts)), [
    100,
    100,
    200,
    400,
    800,
    1000,
    1000,
  ]);
});

test("backoff() spreads ±20 % by default, and as asked", () => {
  const at = (random: number, jitter?: number) =>
    backoff(1, { initialMs: 1000, maxMs: 1000, jitter, random: () => random });
  assert.is(at(0), 800);
  assert.is(at(0.999999), 1200);
  assert.is(at(0, 0), 1000);
  assert.is(at(0, 0.5), 500);
});

test.run();
