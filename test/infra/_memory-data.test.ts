import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  addLongDouble,
  Deque,
  formatDouble,
  formatLongDouble,
  parseDouble,
  parseLongDouble,
  SortedSet,
} from "../../src/infra/_memory-data.ts";

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
  if (model.length) {
    d.set(0, "first");
    assert.is(d.at(0), "first");
  }
});

test("SortedSet keeps (score, member) order, ranks and score ranges under random updates", () => {
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
      assert.is(z.rank(member), s.findIndex(([m]) => m === member));
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

test("long doubles add and print like Redis INCRBYFLOAT", () => {
  const add = (a: string, b: string) =>
    formatLongDouble(addLongDouble(parseLongDouble(a)!, parseLongDouble(b)!)!);
  assert.is(add("0.1", "0.2"), "0.3");
  assert.is(add("10.50", "0.1"), "10.6");
  assert.is(add("0", "100000.1"), "100000.10000000000000142");
  assert.is(add("100000.10000000000000142", "0.3"), "100000.39999999999999858");
  assert.is(add("5.0e3", "2.0e2"), "5200");
  assert.is(add("-1", "1"), "0");
  assert.is(addLongDouble(parseLongDouble("1")!, parseLongDouble("inf")!), undefined);
  assert.is(parseLongDouble(" 1"), undefined);
  assert.is(parseLongDouble("1e4933"), undefined);
});

test.run();
