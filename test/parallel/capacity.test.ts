import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  calibrate,
  type Calibration,
  CapacityError,
  HEADROOM,
  plan,
} from "../../src/parallel/capacity.ts";
import { primesTask } from "../../src/example/parallel.ts";
import { defineParallelTask } from "../../src/parallel/define.ts";
import * as v from "valibot";

const cal = (over: Partial<Calibration> = {}): Calibration => ({
  task_id: "t",
  items: 1000,
  chunks: 40,
  sampled_chunks: 5,
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

test("calibrate() times the task's chunks on a warm thread", async () => {
  const c = await calibrate(primesTask, 1_000_000);
  assert.is(c.chunks, 4);
  assert.is(c.sampled_chunks, 4);
  assert.ok(c.chunk_ms > 0 && c.chunk_ms < 5000, `chunk_ms ${c.chunk_ms}`);
  assert.ok(Math.abs(c.item_us - c.chunks * c.chunk_ms * 1000 / c.items) < 1e-3);
  assert.is(c.rtt_ms, 0, "no store, no round trip");
  assert.ok(c.cores >= 1);
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
