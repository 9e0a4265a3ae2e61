import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as v from "valibot";
import { backends, cleanup, cpuDuring, onCleanup, testRuntime, waitFor } from "../helpers.ts";
import { defineParallelTask, type ParallelTask } from "../../src/parallel/define.ts";
import { ParallelProcessor } from "../../src/parallel/processor.ts";
import { RunStore } from "../../src/parallel/store.ts";
import { runKeys } from "../../src/parallel/keys.ts";
import { System } from "../../src/system.ts";
import type { Runtime } from "../../src/runtime.ts";

const WORKER = new URL("./_worker.ts", import.meta.url);
type Square = { start: number; end: number; value: number };

const squares = defineParallelTask({
  name: "squares",
  input: v.object({ n: v.number(), ms: v.optional(v.number()) }),
  worker: WORKER,
  split: ({ n, ms }) => Array.from({ length: n }, (_, i) => ({ op: "square", n: i, ms })),
  merge: (results: Square[]) => ({
    sum: results.reduce((a, r) => a + r.value, 0),
    spans: results.map((r) => [r.start, r.end]),
  }),
  leaseMs: 300,
});
const spin = defineParallelTask({
  name: "spin",
  input: v.object({ n: v.number(), ms: v.number(), honour: v.boolean() }),
  worker: WORKER,
  split: ({ n, ms, honour }) => Array.from({ length: n }, () => ({ op: "spin", ms, honour })),
  merge: (spins: number[]) => spins.length,
});
const failing = defineParallelTask({
  name: "failing",
  input: v.object({}),
  worker: WORKER,
  split: () => [{ op: "square", n: 1 }, { op: "fail", message: "chunk says no" }],
  merge: () => "never",
});
const badMerge = defineParallelTask({
  name: "bad-merge",
  input: v.object({}),
  worker: WORKER,
  split: () => [{ op: "square", n: 1 }],
  merge: () => {
    throw new Error("cannot merge");
  },
});
const system = () => new System().add(squares, spin, failing, badMerge);

/** CPU time of this process so far, ms. */

/** Largest number of spans open at one instant. */
function maxOverlap(spans: number[][]): number {
  const events = spans.flatMap(([s, e]) => [[s, 1], [e, -1]]).sort((a, b) =>
    a[0] - b[0] || a[1] - b[1]
  );
  let open = 0, most = 0;
  for (const [, d] of events) most = Math.max(most, open += d);
  return most;
}

const metric = async (rt: Runtime, pattern: RegExp) => {
  const m = pattern.exec(await rt.metrics.metrics());
  return m ? Number(m[1]) : 0;
};

for (const backend of backends()) {
  const test = suite(`ParallelProcessor on ${backend.name}`);
  test.after(cleanup);

  const runtime = (share?: Runtime) =>
    testRuntime({
      redis: backend.name === "redis",
      system: system(),
      ...(share ? { env: { KEY_PREFIX: share.config.keyPrefix } } : {}),
      ...(share && backend.name === "memory" ? { store: share.store } : {}),
    });
  const processor = async (rt: Runtime, threads = 2) => {
    const p = new ParallelProcessor(rt, { threads, pollMs: 100 });
    await p.start();
    onCleanup(() => p.stop(Date.now() + 2000));
    return p;
  };
  const start = (rt: Runtime, def: ParallelTask, input: unknown, workerCount: number) =>
    new RunStore(rt.store, rt.config.keyPrefix).create({
      taskId: def.name,
      workerCount,
      chunks: def.split(input as never, { workerCount }),
      leaseMs: def.leaseMs,
      maxAttempts: def.maxAttempts,
    });
  const finished = (rt: Runtime, refcode: string, ms = 10_000) => {
    const runs = new RunStore(rt.store, rt.config.keyPrefix);
    return waitFor(
      async () => {
        const run = await runs.get(refcode);
        return run && ["completed", "failed", "cancelled"].includes(run.status) ? run : null;
      },
      ms,
      `run ${refcode} to end`,
    );
  };

  test("runs every chunk and merges the results in chunk order", async () => {
    const rt = runtime();
    await processor(rt);
    const refcode = await start(rt, squares, { n: 10 }, 2);
    const run = await finished(rt, refcode);
    assert.is(run.status, "completed");
    assert.is((run.result as { sum: number }).sum, 285);
    assert.equal(run.progress, { done: 10, total: 10 });
    assert.ok(run.started_at && run.finished_at);
    assert.is(
      await metric(rt, /parallel_chunks_total\{task_id="squares",outcome="completed"\} (\d+)/),
      10,
    );
    // Observed once the processor has read the ended run back, a moment after the test sees it.
    const durations =
      /parallel_run_duration_seconds_count\{task_id="squares",status="completed"\} (\d+)/;
    await waitFor(async () => (await metric(rt, durations)) === 1, 5000, "the run's duration");
    assert.is(await metric(rt, /^parallel_threads (\d+)/m), 2);
  });

  test("two processors share one run and never run more than worker_count chunks at once", async () => {
    const a = runtime();
    const b = runtime(a);
    await processor(a, 2);
    await processor(b, 2);
    const refcode = await start(a, squares, { n: 16, ms: 60 }, 3);
    const run = await finished(a, refcode);
    assert.is(run.status, "completed");
    const { sum, spans } = run.result as { sum: number; spans: number[][] };
    assert.is(sum, 1240);
    assert.ok(maxOverlap(spans) <= 3, `at most 3 at once (saw ${maxOverlap(spans)})`);
    assert.ok(maxOverlap(spans) >= 2, "ran in parallel");
    const done = /parallel_chunks_total\{task_id="squares",outcome="completed"\} (\d+)/;
    const [ca, cb] = [await metric(a, done), await metric(b, done)];
    assert.is(ca + cb, 16);
    assert.ok(ca > 0 && cb > 0, `both processors ran chunks (${ca} and ${cb})`);
  });

  test("cancel stops the run's threads within a second and no result appears", async () => {
    const rt = runtime();
    const p = await processor(rt, 2);
    const refcode = await start(rt, spin, { n: 6, ms: 20_000, honour: true }, 2);
    await waitFor(() => p.busy === 2, 5000, "two busy threads");
    const t = performance.now();
    assert.is(await new RunStore(rt.store, rt.config.keyPrefix).cancel(refcode), "in_progress");
    await waitFor(() => p.busy === 0, 1000, "threads stopped", 5);
    const took = performance.now() - t;
    assert.ok(took < 1000, `stopped in ${took.toFixed(0)} ms`);
    const used = await cpuDuring(400);
    assert.ok(used < 200, `idle after cancel (${used} ms CPU in 400 ms)`);
    const run = await finished(rt, refcode);
    assert.is(run.status, "cancelled");
    assert.is(run.result, null);
    assert.is(
      await metric(rt, /parallel_chunks_total\{task_id="spin",outcome="aborted"\} (\d+)/),
      2,
    );
  });

  test("a result that arrives after the cancel never changes the run", async () => {
    const rt = runtime();
    const p = await processor(rt, 1);
    const refcode = await start(rt, spin, { n: 1, ms: 600, honour: false }, 1);
    await waitFor(() => p.busy === 1, 5000, "a busy thread");
    await new RunStore(rt.store, rt.config.keyPrefix).cancel(refcode);
    // The worker ignores its signal: its thread is aborted after the grace period, and on Deno
    // the loop runs to its end anyway; either way its result must not land.
    const aborted = /parallel_chunks_total\{task_id="spin",outcome="aborted"\} (\d+)/;
    await waitFor(async () => (await metric(rt, aborted)) === 1, 5000, "the chunk given up");
    const run = await finished(rt, refcode);
    assert.is(run.status, "cancelled");
    assert.is(run.result, null);
    assert.equal(run.progress, { done: 0, total: 1 });
  });

  test("a chunk that throws fails the run with its message", async () => {
    const rt = runtime();
    await processor(rt);
    const run = await finished(rt, await start(rt, failing, {}, 2));
    assert.is(run.status, "failed");
    assert.match(run.error!, /chunk 1 failed: .*chunk says no/);
    assert.is(run.result, null);
  });

  test("a merge that throws fails the run", async () => {
    const rt = runtime();
    await processor(rt);
    const run = await finished(rt, await start(rt, badMerge, {}, 1));
    assert.is(run.status, "failed");
    assert.match(run.error!, /merge failed: cannot merge/);
  });

  test("a dead process's chunk is reclaimed after its lease and run again", async () => {
    const rt = runtime();
    const refcode = await start(rt, squares, { n: 3 }, 1);
    const runs = new RunStore(rt.store, rt.config.keyPrefix);
    assert.is((await runs.claim(refcode, "dead-process:1")).kind, "chunk");
    await processor(rt);
    const run = await finished(rt, refcode);
    assert.is(run.status, "completed");
    assert.is((run.result as { sum: number }).sum, 5);
    const attempts = await rt.store.command([
      "HGETALL",
      runKeys(rt.config.keyPrefix, refcode).attempts,
    ]);
    assert.equal(attempts, [], "an ended run's bookkeeping is gone");
  });

  test("stop() hands unfinished chunks back for another process", async () => {
    const a = runtime();
    const b = runtime(a);
    const pa = await processor(a, 1);
    const refcode = await start(a, spin, { n: 1, ms: 20_000, honour: true }, 1);
    await waitFor(() => pa.busy === 1, 5000, "a busy thread");
    const t = Date.now();
    await pa.stop(Date.now() + 600);
    assert.ok(Date.now() - t < 1500, `stopped by its deadline (${Date.now() - t} ms)`);
    assert.is(pa.busy, 0);
    const keys = runKeys(a.config.keyPrefix, refcode);
    assert.equal(await a.store.command(["LRANGE", keys.pending, 0, -1]), ["0"]);
    assert.is(String(await a.store.command(["HGET", keys.attempts, "0"])), "0");
    const pb = await processor(b, 1);
    await waitFor(() => pb.busy === 1, 5000, "the other process takes the chunk");
    await new RunStore(a.store, a.config.keyPrefix).cancel(refcode);
    await waitFor(() => pb.busy === 0, 1000, "threads stopped", 5);
  });

  test("runs of one task share the threads oldest first and all complete", async () => {
    const rt = runtime();
    await processor(rt, 2);
    const refcodes = [];
    for (let i = 0; i < 4; i++) refcodes.push(await start(rt, squares, { n: 5, ms: 10 }, 2));
    for (const refcode of refcodes) {
      const run = await finished(rt, refcode);
      assert.is(run.status, "completed");
      assert.is((run.result as { sum: number }).sum, 30);
    }
    assert.equal(await new RunStore(rt.store, rt.config.keyPrefix).active("squares"), []);
  });

  test("check() reports busy threads", async () => {
    const rt = runtime();
    const p = await processor(rt, 2);
    assert.equal(await p.check(), { ok: true, detail: "0/2 threads busy" });
  });

  test.run();
}
