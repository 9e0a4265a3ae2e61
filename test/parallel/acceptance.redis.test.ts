// test-runner: alone (it measures the workers' CPU and a capacity plan's wall time)
/**
 * Issue 6's acceptance on real Redis with real processes: one `http` process and
 * `parallel-worker` processes allowed one thread each (PARALLEL_MAX_WORKERS=1).
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { cleanup, cpuMs, type Program, spawnProgram, testRuntime, waitFor } from "../helpers.ts";

test.after(cleanup);

const PI_1E7 = 664579;
const rt = testRuntime({ redis: true });
const env = {
  REDIS_URL: Deno.env.get("TEST_REDIS_URL") ?? "redis://127.0.0.1:6379",
  KEY_PREFIX: rt.config.keyPrefix,
  TOPIC_PREFIX: rt.config.topicPrefix,
};
const worker = () =>
  spawnProgram({
    ...env,
    ROLE: "parallel-worker",
    PARALLEL_MAX_WORKERS: "1",
    SHUTDOWN_TIMEOUT_MS: "3000",
  }, { timeoutMs: 60_000 });
let api: Program, w1: Program, w2: Program;

/** CPU used by each process over `ms`, as a share of one core (real processes: real time). */
async function cpuShare(pids: number[], ms: number): Promise<number[]> {
  const before = pids.map((pid) => cpuMs(pid));
  const t = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  const wall = performance.now() - t;
  return pids.map((pid, i) => (cpuMs(pid) - before[i]) / wall);
}

const start = async (task_id: string, worker_count: unknown, input: unknown) => {
  const res = await fetch(`${api.url}/parallel-tasks`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ task_id, worker_count, input }),
  });
  return { status: res.status, body: await res.json() };
};
const read = async (refcode: string) =>
  await (await fetch(`${api.url}/parallel-tasks/${refcode}`)).json();
const ended = (refcode: string, ms = 60_000) =>
  waitFor(
    async () => {
      const run = await read(refcode);
      return ["completed", "failed", "cancelled"].includes(run.status) ? run : null;
    },
    ms,
    `run ${refcode} to end`,
    50,
  );
const chunksDone = async (p: Program) => {
  const text = await (await fetch(`${p.url}/metrics`)).text();
  const m = /parallel_chunks_total\{task_id="primes",outcome="completed"\} (\d+)/.exec(text);
  return m ? Number(m[1]) : 0;
};
const busy = async (p: Program) => {
  const text = await (await fetch(`${p.url}/metrics`)).text();
  return Number(/^parallel_threads_busy (\d+)/m.exec(text)?.[1] ?? 0);
};

test("start: one http process and two one-thread parallel-worker processes", async () => {
  [api, w1, w2] = await Promise.all([
    spawnProgram({ ...env, ROLE: "http", PARALLEL_MAX_WORKERS: "1" }, { timeoutMs: 60_000 }),
    worker(),
    worker(),
  ]);
});

test('worker_count 0, -1, 1.5, 10⁶, "abc" answer 400; an unknown task_id 404', async () => {
  for (const wc of [0, -1, 1.5, 1e6, "abc"]) {
    const { status, body } = await start("primes", wc, { from: 0, to: 10 });
    assert.is(status, 400, `worker_count ${wc}`);
    assert.equal(body.issues, [{
      path: "worker_count",
      message: "must be an integer from 1 to 64",
    }]);
  }
  const { status, body } = await start("no-such-task", 1, {});
  assert.is(status, 404);
  assert.is(body.status, 404);
});

test("primes [0, 10⁷) = 664579 with worker_count 1", async () => {
  const { status, body } = await start("primes", 1, { from: 0, to: 1e7 });
  assert.is(status, 202);
  const run = await ended(body.refcode);
  assert.is(run.status, "completed");
  assert.equal(run.result, { count: PI_1E7 });
  assert.equal(run.progress, { done: 40, total: 40 });
});

test("primes [0, 10⁷) = 664579 with worker_count 2, both processes running chunks", async () => {
  const before = [await chunksDone(w1), await chunksDone(w2)];
  const { body } = await start("primes", 2, { from: 0, to: 1e7 });
  const run = await ended(body.refcode);
  assert.is(run.status, "completed");
  assert.equal(run.result, { count: PI_1E7 });
  const ran = [(await chunksDone(w1)) - before[0], (await chunksDone(w2)) - before[1]];
  assert.is(ran[0] + ran[1], 40);
  assert.ok(ran[0] > 0 && ran[1] > 0, `both processes ran chunks (${ran.join(" and ")})`);
});

test("the capacity plan for 10⁷ numbers holds in a real run (margin: 20 % headroom)", async () => {
  const url = (deadline: number) =>
    `${api.url}/parallel-tasks/capacity?task_id=primes&items=10000000&deadline_ms=${deadline}`;
  const relaxed = await (await fetch(url(3_600_000))).json();
  assert.is(relaxed.workers, 1);
  assert.is(relaxed.workers_per_pod, 1, "the API process has PARALLEL_MAX_WORKERS=1");
  // A deadline one worker misses by the planner's own estimate, so it sizes two pods.
  const deadline = Math.ceil(relaxed.estimated_ms / (1 - relaxed.headroom) * 0.99);
  const plan = await (await fetch(url(deadline))).json();
  assert.is(plan.feasible, true);
  assert.is(plan.workers, 2, `${deadline} ms needs two workers`);
  assert.is(plan.pods, 2);
  const { body } = await start("primes", plan.workers, { from: 0, to: 1e7 });
  const run = await ended(body.refcode);
  assert.is(run.status, "completed");
  const took = Date.parse(run.finished_at) - Date.parse(run.created_at);
  console.log(
    `capacity: planned ${plan.estimated_ms} ms with ${plan.workers} workers for a ${deadline} ms ` +
      `deadline; the run took ${took} ms (${(100 * took / deadline).toFixed(0)} % of it)`,
  );
  assert.ok(took <= deadline, `finished in ${took} ms, deadline ${deadline} ms`);
});

test("DELETE mid-run: cancelled at once, worker CPU idle within 1 s, no result ever", async () => {
  const { body } = await start("primes", 2, { from: 0, to: 4e7 });
  await waitFor(async () => (await busy(w1)) === 1 && (await busy(w2)) === 1, 20_000, "both busy");
  await waitFor(async () => (await read(body.refcode)).progress.done >= 2, 20_000, "progress");
  const [s1, s2] = await cpuShare([w1.pid, w2.pid], 300);
  assert.ok(s1 > 0.3 && s2 > 0.3, `both processes compute (${s1.toFixed(2)}, ${s2.toFixed(2)})`);
  const t = performance.now();
  const res = await fetch(`${api.url}/parallel-tasks/${body.refcode}`, { method: "DELETE" });
  assert.is(res.status, 202);
  assert.is((await res.json()).status, "cancelled");
  let idleAfter = Infinity;
  while (performance.now() - t < 2000) {
    const shares = await cpuShare([w1.pid, w2.pid], 100);
    if (shares.every((s) => s < 0.15)) {
      idleAfter = performance.now() - t;
      break;
    }
  }
  console.log(`cancel: worker processes idle ${idleAfter.toFixed(0)} ms after DELETE was sent`);
  assert.ok(idleAfter <= 1000, `idle after ${idleAfter} ms`);
  const shares = await cpuShare([w1.pid, w2.pid], 500);
  assert.ok(shares.every((s) => s < 0.1), `stay idle (${shares.map((s) => s.toFixed(2))})`);
  assert.is(await busy(w1), 0);
  assert.is(await busy(w2), 0);
  // Real processes: a result computed after the cancel would land within this second.
  await new Promise((r) => setTimeout(r, 1000));
  const run = await read(body.refcode);
  assert.is(run.status, "cancelled");
  assert.is(run.result, null);
});

test("SIGTERM mid-run: the process exits 0 in time and the run completes elsewhere", async () => {
  const { body } = await start("primes", 2, { from: 0, to: 1e7 });
  await waitFor(
    async () => (await chunksDone(w2)) > 0 && (await busy(w2)) === 1,
    20_000,
    "w2 busy",
  );
  const t = performance.now();
  const status = await w2.stop();
  assert.is(status.code, 0);
  assert.ok(performance.now() - t < 3000, `exited in ${(performance.now() - t).toFixed(0)} ms`);
  const run = await ended(body.refcode);
  assert.is(run.status, "completed");
  assert.equal(run.result, { count: PI_1E7 });
  w2 = await worker();
});

test("kill -9 of one of two processes mid-run: the run completes with the right count", async () => {
  const before = await chunksDone(w2);
  const { body } = await start("primes", 2, { from: 0, to: 1e7 });
  await waitFor(
    async () => (await chunksDone(w2)) > before && (await busy(w2)) === 1,
    20_000,
    "w2 running a chunk",
  );
  w2.kill("SIGKILL");
  await w2.exited;
  const run = await ended(body.refcode, 60_000);
  assert.is(run.status, "completed");
  assert.equal(run.result, { count: PI_1E7 });
  assert.equal(run.progress, { done: 40, total: 40 });
});

test.run();
