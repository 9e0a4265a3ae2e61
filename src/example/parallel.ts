/**
 * @module The example system's parallel task: `primes` counts the primes in [from, to).
 */
import * as v from "valibot";
import { defineParallelTask } from "@svc/runtime";

/** Most numbers per chunk: ~40 ms of trial division near 10⁷ on one core, 40 chunks for π(10⁷). */
const CHUNK = 250_000;
/**
 * Most trial divisions one chunk may cost: about 0.3 s of one core (0.06 to 0.18 billion per
 * second measured on the CI machine). Near 10¹² a number costs ~12000, so chunks there hold
 * ~2500 numbers instead of 250000.
 */
const CHUNK_OPS = 3e7;
/** Most trial divisions one run may cost: about 20 minutes of one core (π(5·10⁸) fits). */
const MAX_RUN_OPS = 1.2e11;
/** Largest `to`. */
const MAX_TO = 1e12;
/** Widest range one run may count. */
const MAX_RANGE = 1e10;
/** Most chunks one run splits into (the cost bounds allow about 4000). */
const MAX_CHUNKS = 5_000;

const bound = v.pipe(
  v.number("must be an integer from 0 to 1000000000000"),
  v.integer("must be an integer from 0 to 1000000000000"),
  v.minValue(0, "must be an integer from 0 to 1000000000000"),
  v.maxValue(MAX_TO, "must be an integer from 0 to 1000000000000"),
);

/** Trial divisions the worker spends per number near `n`: 1, plus √n/3 for each prime (1/ln n). */
function _opsPerNumber(n: number): number {
  return n < 16 ? 1 : 1 + Math.sqrt(n) / (3 * Math.log(n));
}

/**
 * What counting the primes of [from, to) costs, in trial divisions: an upper sum over 1000
 * slices (the cost grows along the range, so each slice is priced at its top).
 *
 * @param from first number
 * @param to past the last
 * @returns the estimated trial divisions
 */
export function primesCost(from: number, to: number): number {
  const width = (to - from) / 1000;
  let ops = 0;
  for (let i = 1; i <= 1000 && width > 0; i++) ops += width * _opsPerNumber(from + i * width);
  return ops;
}

const _sci = (x: number) => x.toExponential(1).replace("e+", "e");

const PrimesInput = v.pipe(
  v.strictObject({ from: bound, to: bound }),
  v.forward(v.check(({ from, to }) => to >= from, "must be at least from"), ["to"]),
  v.forward(
    v.check(({ from, to }) => to - from <= MAX_RANGE, "must be at most from + 10000000000"),
    ["to"],
  ),
  v.forward(
    v.check(
      ({ from, to }) => primesCost(from, to) <= MAX_RUN_OPS,
      (issue) => {
        const { from, to } = issue.input as { from: number; to: number };
        return `makes the range cost about ${_sci(primesCost(from, to))} trial divisions; ` +
          `a run may cost at most ${_sci(MAX_RUN_OPS)} (about 20 minutes of one core)`;
      },
    ),
    ["to"],
  ),
);

/**
 * `primes` `{from, to}` → `{count}`: π(10⁷) = 664579.
 *
 * Chunks go out from the top of the range down: the largest numbers cost the most, so the
 * cheap chunks come last and fill the gaps between threads.
 */
export const primesTask = defineParallelTask({
  name: "primes",
  input: PrimesInput,
  worker: new URL("../../workers/primes.ts", import.meta.url),
  // Each chunk's size is set by its cost near its top, so no chunk costs more than CHUNK_OPS.
  split: ({ from, to }) => {
    const chunks = [];
    for (let hi = to; hi > from;) {
      const size = Math.max(1, Math.min(CHUNK, Math.floor(CHUNK_OPS / _opsPerNumber(hi))));
      chunks.push({ from: Math.max(from, hi - size), to: hi });
      hi -= size;
    }
    return chunks;
  },
  merge: (counts: number[]) => ({ count: counts.reduce((sum, n) => sum + n, 0) }),
  maxChunks: MAX_CHUNKS,
  sample: (items) => ({ from: 0, to: items }),
});
