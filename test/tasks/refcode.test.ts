import { test } from "uvu";
import * as assert from "uvu/assert";
import { newRefcode, REFCODE } from "../../src/tasks/refcode.ts";

test("newRefcode() makes `t_` + 26 base32 characters (130 random bits)", () => {
  const ref = newRefcode();
  assert.match(ref, REFCODE);
  assert.is(ref.length, 28);
});

test("newRefcode() shows no shared prefix or order between consecutive codes", () => {
  const refs = Array.from({ length: 2000 }, newRefcode);
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
