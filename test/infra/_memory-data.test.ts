import { test } from "uvu";
import * as assert from "uvu/assert";
import { Deque, formatDouble, parseDouble, SortedSet } from "../../src/infra/_memory-data.ts";

/** A small deterministic PRNG, so a failure replays. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
}

test("Deque behaves like an array under random pushes and pops at both ends", () => {
  const random = rng(1);
  const d = new Deque();
  const model: string[] = [];
  for (let i = 0; i < 20_000; i++) {
    const op = Math.floor(random() * 4);
    if (op === 0) (d.push(`v${i}`), model.push(`v${i}`));
    else if (op === 1) (d.unshift(`v${i}`), model.unshift(`v${i}`));
    else if (op === 2) assert.is(d.pop(), model.pop());
    else assert.is(d.shift(), model.shift());
    assert.is(d.length, model.length);
  }
  assert.equal(d.slice(0, d.length - 1), model);
  if (model.length) assert.is(d.at(0), model[0]);
});

test("SortedSet keeps (score, member) order and score ranges under random updates", () => {
  const random = rng(7);
  const z = new SortedSet();
  const model = new Map<string, number>();
  const sorted = () =>
    [...model].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (let i = 0; i < 30_000; i++) {
    const member = `m${Math.floor(random() * 5000)}`;
    const op = random();
    if (op < 0.6) {
      const score = Math.floor(random() * 300) / 4;
      z.set(member, score);
      model.set(member, score);
    } else if (op < 0.9) {
      assert.is(z.delete(member), model.delete(member));
    } else if (op < 0.95 && model.size > 10) {
      const start = Math.floor(random() * 5);
      const expected = sorted().slice(start, start + 3);
      assert.is(z.removeRange(start, start + 2), 3);
      for (const [m] of expected) model.delete(m);
    } else {
      const s = sorted();
      const min = Math.floor(random() * 75), max = min + Math.floor(random() * 10);
      const first = s.findIndex(([, sc]) => sc > min);
      assert.is(z.lowerRank(min, true), first < 0 ? s.length : first);
      const last = s.findLastIndex(([, sc]) => sc <= max);
      assert.is(z.upperRank(max, false), last);
    }
    assert.is(z.size, model.size);
  }
  assert.equal(
    z.slice(0, z.size - 1).map((x) => [x.member, x.score]),
    sorted(),
  );
});

test("formatDouble() writes %.17g like Redis 7.0", () => {
  const cases: [number, string][] = [
    [0, "0"],
    [1, "1"],
    [1.5, "1.5"],
    [-2.25, "-2.25"],
    [0.1, "0.10000000000000001"],
    [1e-5, "1.0000000000000001e-05"],
    [0.0001, "0.0001"],
    [1e16, "10000000000000000"],
    [1e17, "1e+17"],
    [123456789012345678, "1.2345678901234568e+17"],
    [1e20, "1e+20"],
    [Infinity, "inf"],
    [-Infinity, "-inf"],
  ];
  for (const [value, text] of cases) assert.is(formatDouble(value), text, String(value));
});

test("parseDouble() accepts what Redis accepts", () => {
  assert.is(parseDouble("1.5"), 1.5);
  assert.is(parseDouble("-inf"), -Infinity);
  assert.is(parseDouble("+inf"), Infinity);
  assert.is(parseDouble("1e3"), 1000);
  assert.is(parseDouble(".5"), 0.5);
  for (const bad of ["", " 1", "1 ", "abc", "nan", "1e", "--1"]) {
    assert.is(parseDouble(bad), undefined, bad);
  }
});

test("formatDouble() writes %.14g like Lua's tostring and cjson", () => {
  assert.is(formatDouble(1 / 3, 14), "0.33333333333333");
  assert.is(formatDouble(2 ** 53, 14), "9.007199254741e+15");
  assert.is(formatDouble(1e15, 14), "1e+15");
  assert.is(formatDouble(123456789012346, 14), "1.2345678901235e+14");
  assert.is(formatDouble(12345678901234, 14), "12345678901234");
  assert.is(formatDouble(1e-5, 14), "1e-05");
  assert.is(formatDouble(3, 14), "3");
});

test.run();
