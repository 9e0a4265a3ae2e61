/**
 * @module The example system's parallel task: `primes` counts the primes in [from, to).
 */
import * as v from "valibot";
import { defineParallelTask } from "@svc/runtime";

/** Numbers per chunk: ~40 ms of trial division near 10⁷ on one core, 40 chunks for π(10⁷). */
const CHUNK = 250_000;
/** Largest `to`. */
const MAX_TO = 1e12;
/** Widest range one run may count. */
const MAX_RANGE = 1e10;
/** Most chunks one run splits into (the runtime allows 10000). */
const MAX_CHUNKS = 10_000;

const bound = v.pipe(
  v.number("must be an integer from 0 to 1000000000000"),
  v.integer("must be an integer from 0 to 1000000000000"),
  v.minValue(0, "must be an integer from 0 to 1000000000000"),
  v.maxValue(MAX_TO, "must be an integer from 0 to 1000000000000"),
);

const PrimesInput = v.pipe(
  v.strictObject({ from: bound, to: bound }),
  v.forward(v.check(({ from, to }) => to >= from, "must be at least from"), ["to"]),
  v.forward(
    v.check(({ from, to }) => to - from <= MAX_RANGE, "must be at most from + 10000000000"),
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
  split: ({ from, to }) => {
    const size = Math.max(CHUNK, Math.ceil((to - from) / MAX_CHUNKS));
    const chunks = [];
    for (let hi = to; hi > from; hi -= size) {
      chunks.push({ from: Math.max(from, hi - size), to: hi });
    }
    return chunks;
  },
  merge: (counts: number[]) => ({ count: counts.reduce((sum, n) => sum + n, 0) }),
  sample: (items) => ({ from: 0, to: items }),
});
