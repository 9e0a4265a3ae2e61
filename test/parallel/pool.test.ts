import { test } from "uvu";
import * as assert from "uvu/assert";
import { STOP_GRACE_MS, ThreadPool } from "../../src/parallel/pool.ts";
import { cpuDuring, cpuMs, waitFor } from "../helpers.ts";

const WORKER = new URL("./_worker.ts", import.meta.url).href;
const PRIMES = new URL("../../workers/primes.ts", import.meta.url).href;
const pools: ThreadPool[] = [];
const pool = (size: number) => {
  const p = new ThreadPool(size);
  pools.push(p);
  return p;
};
test.after(async () => {
  for (const p of pools) await p.destroy();
});

test("start() runs a chunk on a thread and returns the worker's result", async () => {
  const p = pool(2);
  const running = p.start(PRIMES, { from: 0, to: 100_000 });
  assert.is(p.busy, 1);
  assert.is(await running.result, 9592);
  assert.is(p.busy, 0);
});

test("start() runs up to size chunks at the same time", async () => {
  const p = pool(2);
  const results = await Promise.all([
    p.start(WORKER, { op: "square", n: 2, ms: 200 }).result,
    p.start(WORKER, { op: "square", n: 3, ms: 200 }).result,
  ]) as { start: number; end: number; value: number }[];
  assert.equal(results.map((r) => r.value), [4, 9]);
  assert.ok(results[0].start < results[1].end && results[1].start < results[0].end, "overlap");
});

test("start() rejects with the worker's error", async () => {
  const p = pool(1);
  try {
    await p.start(WORKER, { op: "fail", message: "no luck" }).result;
    assert.unreachable();
  } catch (err) {
    assert.match(String((err as Error).message), /no luck/);
  }
  assert.is(await p.start(PRIMES, { from: 0, to: 100 }).result, 25, "the pool still works");
});

/**
 * Starts a spinning chunk on a one-thread pool and returns once it spins (its CPU shows), then
 * stops it and measures how long the chunk took to end.
 */
async function stopSpinning(chunk: { ms: number; honour: boolean }) {
  const p = pool(1);
  await p.start(WORKER, { op: "square", n: 1 }).result; // the thread and its file are loaded
  const spinning = cpuMs() + 30;
  const running = p.start(WORKER, { op: "spin", ...chunk });
  await waitFor(() => cpuMs() >= spinning, 5000, "the chunk spinning", 10);
  const t = performance.now();
  running.stop();
  const err = await running.result.then(() => null, (e: Error) => e);
  return { p, err, took: performance.now() - t };
}

test("stop() ends a chunk that checks its signal at once, and its CPU use with it", async () => {
  const { p, err, took } = await stopSpinning({ ms: 10_000, honour: true });
  assert.is(err?.name, "AbortError");
  assert.ok(took < STOP_GRACE_MS, `stopped in ${took} ms`);
  const used = await cpuDuring(500);
  assert.ok(used < 150, `idle after stop (${used} ms CPU in 500 ms)`);
  assert.is(await p.start(PRIMES, { from: 0, to: 100 }).result, 25, "the pool still works");
});

test("stop() aborts a chunk that ignores its signal after the grace period", async () => {
  const { err, took } = await stopSpinning({ ms: 800, honour: false });
  assert.is(err?.name, "AbortError");
  assert.ok(took >= STOP_GRACE_MS - 20 && took < 1000, `aborted after ${took} ms`);
  // On Deno the terminated thread spins on until its loop ends (denoland/deno#35657): wait for
  // it to go quiet, so it takes no CPU from the files that run next.
  await waitFor(async () => (await cpuDuring(50)) < 30, 5000, "the aborted thread idle", 0);
});

test.run();
