/**
 * @module A tinypool worker file for the parallel tests: what it does is in the chunk.
 */

/** One chunk of the test tasks. */
export type TestChunk =
  | { op: "square"; n: number; ms?: number }
  | { op: "spin"; ms: number; honour: boolean }
  | { op: "fail"; message: string };

/**
 * Runs a test chunk: `square` waits `ms` then returns its times and n²; `spin` burns CPU for
 * `ms` (checking the signal when `honour`); `fail` throws.
 *
 * @param chunk what to do
 * @param signal the chunk's stop signal
 * @returns the chunk's result
 */
export default async function testWorker(
  chunk: TestChunk,
  signal: { readonly aborted: boolean; throwIfAborted(): void },
): Promise<unknown> {
  if (chunk.op === "fail") throw new Error(chunk.message);
  if (chunk.op === "spin") {
    const end = Date.now() + chunk.ms;
    let spins = 0;
    while (Date.now() < end) {
      if (chunk.honour && ++spins % 1000 === 0) signal.throwIfAborted();
    }
    return spins;
  }
  const start = Date.now();
  if (chunk.ms) await new Promise((r) => setTimeout(r, chunk.ms));
  return { start, end: Date.now(), value: chunk.n * chunk.n };
}
