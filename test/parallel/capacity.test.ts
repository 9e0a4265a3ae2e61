import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  calibrate,
  type Calibration,
  CALIBRATION_BUDGET_MS,
  CapacityError,
  CapacityPlanner,
  HEADROOM,
  measure,
  plan,
  REFRESH_MS,
} from "../../src/parallel/capacity.ts";
import { primesTask } from "../../src/example/parallel.ts";
import { defineParallelTask } from "../../src/parallel/define.ts";
import * as v from "valibot";
import { waitFor } from "../helpers.ts";

const cal = (over: Partial<Calibration> = {}): Calibration => ({
  task_id: "t",
  items: 1000,
  chunks: 40,
  sample_items: 100,
  sampled_chunks: 5,
  complete: true,
  measure_ms: 500,
  chunk_ms: 50,
  item_us: 2000,
  overhead_ms: 1,
  start_ms: 20,
  rtt_ms: 0.3,
  thread_memory_bytes: 10e6,
  process_memory_bytes: 100e6,
  cores: 4,
  measured_at: "2025-01-01T00:00:00.000Z",
  ...over,
});

test("plan() picks the fewest workers whose estimate fits the deadline minus headroom", () => {
  // 40 chunks × 51 ms: 1 worker 2060 ms, 2 → 1040, 4 → 530, 5 → 428, 8 → 275.
  const p = plan(cal(), { deadlineMs: 1000, maxWorkers: 64, workersPerPod: 4 });
  assert.is(p.feasible, true);
  assert.is(p.workers, 3, "ceil(40/3) × 51 + 20 = 734 ≤ 800");
  assert.is(p.estimated_ms, 734);
  assert.is(p.headroom, HEADROOM);
  assert.is(p.workers_per_pod, 4);
  assert.is(p.pods, 1);
  assert.is(p.pod_memory_bytes, 140e6);
});

test("plan() spreads workers over pods of workers_per_pod threads", () => {
  const p = plan(cal({ chunks: 400 }), { deadlineMs: 1000, maxWorkers: 64, workersPerPod: 4 });
  assert.is(p.workers, 27, "ceil(400/27) = 15 rounds × 51 + 20 = 785 ≤ 800; 26 → 836");
  assert.is(p.estimated_ms, 785);
  assert.is(p.pods, 7);
});

test("plan() says infeasible and answers the most useful worker count", () => {
  // One round of chunks takes 20 + 51 = 71 ms: more than 80 % of 50 ms.
  const p = plan(cal(), { deadlineMs: 50, maxWorkers: 64, workersPerPod: 2 });
  assert.is(p.feasible, false);
  assert.is(p.workers, 40, "never more workers than chunks");
  const capped = plan(cal(), { deadlineMs: 50, maxWorkers: 8, workersPerPod: 2 });
  assert.is(capped.workers, 8, "never more than the task allows");
  assert.is(capped.pods, 4);
});

const WORKER = new URL("./_worker.ts", import.meta.url);

/** A task whose items each spin `msPerItem` on the thread, counting its measurements. */
function spinTask(msPerItem: number, honour = true) {
  const counts = { measurements: 0 };
  const def = defineParallelTask({
    name: "spin",
    input: v.object({ n: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(1e6)) }),
    worker: WORKER,
    split: ({ n }) =>
      Array.from({ length: Math.ceil(n / 10) }, (_, i) => ({
        op: "spin",
        ms: msPerItem * Math.min(10, n - 10 * i),
        honour,
      })),
    merge: () => null,
    sample: (n) => {
      if (n === 1) counts.measurements++;
      return { n };
    },
  });
  return { def, counts };
}

test("calibrate() prices a run of any size from one measurement of the task's chunks", async () => {
  const c = await calibrate(primesTask, 1_000_000);
  assert.is(c.chunks, 4);
  assert.ok(c.sampled_chunks >= 1 && c.complete, JSON.stringify(c));
  assert.ok(c.item_us > 0);
  assert.ok(Math.abs(c.chunk_ms - c.items * c.item_us / 1000 / c.chunks) < 1e-3);
  assert.is(c.rtt_ms, 0, "no store, no round trip");
  assert.ok(c.cores >= 1);
  assert.ok(c.measure_ms <= CALIBRATION_BUDGET_MS + 1000, `${c.measure_ms} ms`);
});

test("measure() runs the chunks on a thread: the event loop keeps turning", async () => {
  const { def } = spinTask(30);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 20);
  try {
    const m = await measure(def);
    // Samples of 1 and 10 items: 30 ms (twice, warm-up first), then 300 ms of spinning, all off
    // this thread.
    assert.ok(ticks >= 5, `${ticks} ticks while ${m.measure_ms} ms of measuring`);
    assert.ok(m.item_us >= 25_000, `${m.item_us} µs per item`);
  } finally {
    clearInterval(timer);
  }
});

test("measure() is bounded: a chunk longer than the budget is stopped, the cost a floor", async () => {
  const { def } = spinTask(60_000);
  const t = performance.now();
  const m = await measure(def, undefined, 500);
  const took = performance.now() - t;
  assert.is(m.complete, false);
  assert.ok(m.item_us >= 400_000, `floor ${m.item_us} µs`);
  // The budget, plus thread start and the stop grace: far from the chunk's 60 s.
  assert.ok(took < 10_000, `${took} ms`);
});

test("CapacityPlanner measures once per task for concurrent requests and every items value", async () => {
  const { def, counts } = spinTask(1);
  let now = 1_000_000;
  const planner = new CapacityPlanner(undefined, 2, () => now);
  const plans = await Promise.all(
    [10, 100, 1000, 10_000, 100_000].map((items) => planner.plan(def, items, 60_000)),
  );
  assert.is(counts.measurements, 1);
  assert.equal(new Set(plans.map((p) => p.measured_at)).size, 1);
  assert.equal(plans.map((p) => p.calibration.chunks), [1, 10, 100, 1000, 10_000]);
  const warm = await planner.plan(def, 12_345, 1000);
  assert.is(counts.measurements, 1, "warm: no new measurement");
  assert.is(warm.measured_at, plans[0].measured_at);
  // After a while it is measured again, in the background: the answer does not wait for it.
  now += REFRESH_MS + 1;
  const stale = await planner.plan(def, 10, 1000);
  assert.is(stale.measured_at, plans[0].measured_at);
  assert.is(counts.measurements, 2);
  await waitFor(
    async () => (await planner.plan(def, 10, 1000)).measured_at !== plans[0].measured_at,
    15_000,
    "a fresh measurement",
  );
});

test("CapacityPlanner refuses a run over the task's limits, naming it", async () => {
  const planner = new CapacityPlanner(undefined, 2);
  try {
    await planner.plan(primesTask, 1e9, 1000);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, CapacityError);
    assert.match((err as Error).message, /over the limits of "primes": to .*at most 1\.2e11/);
  }
});

test("calibrate() refuses a task without a sample", async () => {
  const def = defineParallelTask({
    name: "x",
    input: v.object({}),
    worker: new URL("./_worker.ts", import.meta.url),
    split: () => [],
    merge: () => null,
  });
  try {
    await calibrate(def, 10);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, CapacityError);
  }
});

test.run();
