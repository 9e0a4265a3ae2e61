import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as v from "valibot";
import { backends, cleanup, onCleanup, testRuntime, waitFor } from "../helpers.ts";
import { createApp } from "../../src/app.ts";
import { exampleSystem } from "../../src/example/mod.ts";
import { defineParallelTask } from "../../src/parallel/define.ts";
import { ParallelProcessor } from "../../src/parallel/processor.ts";
import { RUN_REFCODES } from "../../src/jobs/refcode.ts";

const newRefcode = () => RUN_REFCODES.make();

const WORKER = new URL("./_worker.ts", import.meta.url);
const few = defineParallelTask({
  name: "few",
  input: v.object({ n: v.pipe(v.number(), v.integer(), v.minValue(0)) }),
  worker: WORKER,
  split: ({ n }) => Array.from({ length: n }, (_, i) => ({ op: "square", n: i })),
  merge: (rs: { value: number }[]) => rs.reduce((a, r) => a + r.value, 0),
  maxWorkers: 4,
});
const unsampled = defineParallelTask({
  name: "unsampled",
  input: v.object({}),
  worker: WORKER,
  split: () => [],
  merge: () => null,
});

const post = (body: unknown) => ({
  method: "POST",
  body: typeof body === "string" ? body : JSON.stringify(body),
  headers: { "content-type": "application/json" },
});

for (const backend of backends()) {
  const test = suite(`parallel routes on ${backend.name}`);
  test.after(cleanup);

  const setup = async (options: { worker?: boolean; env?: Record<string, string> } = {}) => {
    const rt = testRuntime({
      redis: backend.name === "redis",
      system: exampleSystem().add(few, unsampled),
      env: options.env,
    });
    if (!options.env?.REDIS_URL) {
      await waitFor(async () => (await rt.store.check()).ok, 5000, "store ready");
    }
    if (options.worker) {
      const p = new ParallelProcessor(rt, { threads: 2, pollMs: 100 });
      await p.start();
      onCleanup(() => p.stop(Date.now() + 2000));
    }
    return { rt, app: createApp(rt, { api: true, services: () => [], routes: [] }) };
  };

  test("POST /parallel-tasks answers 202 with the refcode, Location and Retry-After", async () => {
    const { app } = await setup();
    const res = await app.request(
      "/parallel-tasks",
      post({ task_id: "primes", worker_count: 2, input: { from: 0, to: 1000 } }),
    );
    assert.is(res.status, 202);
    const body = await res.json();
    assert.equal(Object.keys(body).sort(), [
      "refcode",
      "status",
      "status_url",
      "task_id",
      "worker_count",
    ]);
    assert.is(body.task_id, "primes");
    assert.is(body.worker_count, 2);
    assert.is(body.status, "queued");
    assert.is(body.status_url, `/parallel-tasks/${body.refcode}`);
    assert.is(res.headers.get("location"), body.status_url);
    assert.is(res.headers.get("retry-after"), "1");
    const run = await (await app.request(body.status_url)).json();
    assert.equal(Object.keys(run).sort(), [
      "created_at",
      "error",
      "finished_at",
      "progress",
      "refcode",
      "result",
      "started_at",
      "status",
      "task_id",
      "worker_count",
    ]);
    assert.is(run.status, "queued");
    assert.equal(run.progress, { done: 0, total: 1 });
    assert.match(run.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  test("GET /parallel-tasks/{refcode} shows progress and the merged result", async () => {
    const { app } = await setup({ worker: true });
    const res = await app.request(
      "/parallel-tasks",
      post({ task_id: "primes", worker_count: 2, input: { from: 0, to: 1_000_000 } }),
    );
    const { status_url } = await res.json();
    const run = await waitFor(
      async () => {
        const r = await (await app.request(status_url)).json();
        return r.status === "completed" ? r : null;
      },
      20_000,
      "primes to complete",
    );
    assert.equal(run.result, { count: 78498 });
    assert.equal(run.progress, { done: 4, total: 4 });
    assert.is(run.error, null);
    assert.ok(run.started_at <= run.finished_at);
  });

  test('worker_count 0, -1, 1.5, 10⁶, "abc", null or missing answers 400 naming the limit', async () => {
    const { app } = await setup();
    for (const worker_count of [0, -1, 1.5, 1e6, "abc", null, undefined]) {
      const res = await app.request(
        "/parallel-tasks",
        post({ task_id: "primes", worker_count, input: { from: 0, to: 10 } }),
      );
      assert.is(res.status, 400, `worker_count ${worker_count}`);
      assert.is(res.headers.get("content-type"), "application/problem+json");
      const body = await res.json();
      assert.equal(body.issues, [{
        path: "worker_count",
        message: "must be an integer from 1 to 64",
      }]);
    }
  });

  test("worker_count above the task's own maxWorkers answers 400 with its limit", async () => {
    const { app } = await setup();
    const res = await app.request(
      "/parallel-tasks",
      post({ task_id: "few", worker_count: 5, input: { n: 1 } }),
    );
    assert.is(res.status, 400);
    assert.equal((await res.json()).issues, [{
      path: "worker_count",
      message: "must be an integer from 1 to 4",
    }]);
  });

  test("an unknown task_id answers 404", async () => {
    const { app } = await setup();
    const res = await app.request(
      "/parallel-tasks",
      post({ task_id: "nope", worker_count: 1, input: {} }),
    );
    assert.is(res.status, 404);
    assert.is(res.headers.get("content-type"), "application/problem+json");
    assert.match((await res.json()).detail, /"nope"/);
  });

  test("input failing the task's schema answers 400 with issues under input", async () => {
    const { app } = await setup();
    const cases: [unknown, string, RegExp][] = [
      [{ from: 10, to: 1 }, "input.to", /at least from/],
      [{ from: 0, to: 1.5 }, "input.to", /integer from 0 to 1000000000000/],
      [{ from: -1, to: 5 }, "input.from", /integer from 0 to 1000000000000/],
      [{ from: 0, to: 2e10 }, "input.to", /at most from \+ 10000000000/],
      [{ from: 0 }, "input.to", /./],
      [undefined, "input", /./],
    ];
    for (const [input, path, message] of cases) {
      const res = await app.request(
        "/parallel-tasks",
        post({ task_id: "primes", worker_count: 1, input }),
      );
      assert.is(res.status, 400, JSON.stringify(input));
      const issue = (await res.json()).issues[0];
      assert.is(issue.path, path, JSON.stringify(input));
      assert.match(issue.message, message);
    }
  });

  test("a body that is not JSON, or a split into too many chunks, answers 400", async () => {
    const { app } = await setup();
    assert.is((await app.request("/parallel-tasks", post("{nope"))).status, 400);
    const res = await app.request(
      "/parallel-tasks",
      post({ task_id: "few", worker_count: 1, input: { n: 10_001 } }),
    );
    assert.is(res.status, 400);
    assert.match((await res.json()).issues[0].message, /10001 chunks; at most 10000/);
  });

  test("a run without chunks completes at once with merge([])", async () => {
    const { app } = await setup();
    const res = await app.request(
      "/parallel-tasks",
      post({ task_id: "few", worker_count: 1, input: { n: 0 } }),
    );
    assert.is(res.status, 202);
    const run = await (await app.request((await res.json()).status_url)).json();
    assert.is(run.status, "completed");
    assert.is(run.result, 0);
  });

  test("GET of an unknown or malformed refcode answers 404", async () => {
    const { app } = await setup();
    assert.is((await app.request(`/parallel-tasks/${newRefcode()}`)).status, 404);
    assert.is((await app.request("/parallel-tasks/not-a-refcode")).status, 404);
  });

  test("DELETE cancels a live run (202), then answers 409; unknown answers 404", async () => {
    const { app } = await setup();
    const res = await app.request(
      "/parallel-tasks",
      post({ task_id: "primes", worker_count: 1, input: { from: 0, to: 1e7 } }),
    );
    const { status_url } = await res.json();
    const del = await app.request(status_url, { method: "DELETE" });
    assert.is(del.status, 202);
    const run = await del.json();
    assert.is(run.status, "cancelled");
    assert.ok(run.finished_at);
    const again = await app.request(status_url, { method: "DELETE" });
    assert.is(again.status, 409);
    assert.match((await again.json()).detail, /already cancelled/);
    assert.is(
      (await app.request(`/parallel-tasks/${newRefcode()}`, { method: "DELETE" })).status,
      404,
    );
  });

  test("GET /parallel-tasks/capacity answers workers and pods from a calibration", async () => {
    const { app } = await setup();
    const res = await app.request(
      "/parallel-tasks/capacity?task_id=primes&items=2000000&deadline_ms=60000",
    );
    assert.is(res.status, 200);
    const plan = await res.json();
    assert.is(plan.task_id, "primes");
    assert.is(plan.items, 2_000_000);
    assert.is(plan.feasible, true);
    assert.is(plan.workers, 1, "a minute is plenty for 2·10⁶ numbers");
    assert.is(plan.pods, 1);
    assert.is(plan.calibration.chunks, 8);
    assert.ok(plan.calibration.chunk_ms > 0);
    assert.ok(plan.calibration.thread_memory_bytes >= 0);
    assert.match(plan.formula, /ceil\(chunks \/ w\)/);
    const tight = await (await app.request(
      "/parallel-tasks/capacity?task_id=primes&items=2000000&deadline_ms=1",
    )).json();
    assert.is(tight.feasible, false);
    assert.is(tight.workers, 8, "as many workers as chunks is the best it can do");
  });

  test("capacity with a bad query answers 400, an unknown task 404", async () => {
    const { app } = await setup();
    for (
      const q of [
        "items=10&deadline_ms=10",
        "task_id=primes&items=0&deadline_ms=10",
        "task_id=primes&items=10&deadline_ms=abc",
      ]
    ) {
      const res = await app.request(`/parallel-tasks/capacity?${q}`);
      assert.is(res.status, 400, q);
      assert.ok((await res.json()).issues.length > 0);
    }
    assert.is(
      (await app.request("/parallel-tasks/capacity?task_id=nope&items=1&deadline_ms=1")).status,
      404,
    );
    const res = await app.request(
      "/parallel-tasks/capacity?task_id=unsampled&items=1&deadline_ms=1",
    );
    assert.is(res.status, 400);
    assert.match((await res.json()).detail, /no sample input/);
  });

  test("primes refuses a range over its cost bound with 400 naming the limit", async () => {
    const { app } = await setup();
    const res = await app.request(
      "/parallel-tasks",
      post({ task_id: "primes", worker_count: 2, input: { from: 990000000000, to: 1e12 } }),
    );
    assert.is(res.status, 400);
    const body = await res.json();
    assert.is(body.issues[0].path, "input.to");
    assert.match(body.issues[0].message, /at most 1\.2e11 \(about 20 minutes of one core\)/);
    // A narrow range of big numbers is fine, in chunks bounded by their cost.
    const ok = await app.request(
      "/parallel-tasks",
      post({ task_id: "primes", worker_count: 2, input: { from: 1e12 - 1e6, to: 1e12 } }),
    );
    assert.is(ok.status, 202);
  });

  test("a task at its maxActiveRuns answers 429 with Retry-After, also under concurrency", async () => {
    const capped = defineParallelTask({
      name: "capped",
      input: v.object({ n: v.number() }),
      worker: WORKER,
      split: ({ n }) => Array.from({ length: n }, (_, i) => ({ op: "square", n: i })),
      merge: () => null,
      maxActiveRuns: 3,
    });
    const rt = testRuntime({
      redis: backend.name === "redis",
      system: exampleSystem().add(capped),
    });
    const app = createApp(rt, { api: true, services: () => [], routes: [] });
    const start = async (): Promise<Response> =>
      await app.request(
        "/parallel-tasks",
        post({ task_id: "capped", worker_count: 1, input: { n: 2 } }),
      );
    const refcodes: string[] = [];
    const statuses = await Promise.all(
      Array.from({ length: 8 }, () =>
        start().then(async (r) => {
          const body = await r.json();
          if (r.status === 202) refcodes.push(body.refcode);
          if (r.status === 429) {
            assert.ok(Number(r.headers.get("retry-after")) > 0);
            assert.match(body.detail, /at most 3, its maxActiveRuns/);
          }
          return r.status;
        })),
    );
    assert.equal(statuses.sort(), [202, 202, 202, 429, 429, 429, 429, 429]);
    // A cancelled run leaves room for another.
    assert.is(
      (await app.request(`/parallel-tasks/${refcodes[0]}`, { method: "DELETE" })).status,
      202,
    );
    assert.is((await start()).status, 202);
    assert.is((await start()).status, 429);
  });

  test("/openapi.json documents the parallel-task routes", async () => {
    const { app } = await setup();
    const doc = await (await app.request("/openapi.json")).json();
    assert.ok(doc.paths["/parallel-tasks"].post);
    assert.ok(doc.paths["/parallel-tasks/capacity"].get);
    assert.ok(doc.paths["/parallel-tasks/{refcode}"].get);
    assert.ok(doc.paths["/parallel-tasks/{refcode}"].delete);
  });

  test.run();
}

const down = suite("parallel routes while Redis is down");
down.after(cleanup);
down("every route answers 503, never 500", async () => {
  const rt = testRuntime({ system: exampleSystem(), env: { REDIS_URL: "redis://127.0.0.1:1" } });
  const app = createApp(rt, { api: true, services: () => [], routes: [] });
  const requests: [string, RequestInit?][] = [
    ["/parallel-tasks", post({ task_id: "primes", worker_count: 1, input: { from: 0, to: 10 } })],
    [`/parallel-tasks/${newRefcode()}`],
    [`/parallel-tasks/${newRefcode()}`, { method: "DELETE" }],
  ];
  for (const [path, init] of requests) {
    const res = await app.request(path, init);
    assert.is(res.status, 503, `${init?.method ?? "GET"} ${path}`);
    assert.is(res.headers.get("content-type"), "application/problem+json");
  }
});
down.run();
