/**
 * Embedded mode: one `ROLE=all` process with no REDIS_URL runs parallel tasks with the same
 * semantics (threads, worker_count, cancel, shutdown) on its in-process store.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { cleanup, cpuDuring, type Program, spawnProgram, unique, waitFor } from "../helpers.ts";

test.after(cleanup);

let p: Program;

const start = async (worker_count: number, to: number) =>
  await (await fetch(`${p.url}/parallel-tasks`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ task_id: "primes", worker_count, input: { from: 0, to } }),
  })).json();
const read = async (refcode: string) =>
  await (await fetch(`${p.url}/parallel-tasks/${refcode}`)).json();

test("start: ROLE=all, embedded store, two threads", async () => {
  p = await spawnProgram({
    ROLE: "all",
    PARALLEL_MAX_WORKERS: "2",
    KEY_PREFIX: unique("t"),
    SHUTDOWN_TIMEOUT_MS: "3000",
  }, { timeoutMs: 60_000 });
  const ready = await (await fetch(`${p.url}/readyz`)).json();
  assert.is(ready.checks.redis.detail, "embedded");
  assert.is(ready.checks["parallel-worker"].status, "ok");
});

test("primes [0, 10⁷) = 664579 with worker_count 2", async () => {
  const { refcode } = await start(2, 1e7);
  const run = await waitFor(
    async () => {
      const r = await read(refcode);
      return r.status === "completed" ? r : null;
    },
    60_000,
    "run to complete",
    50,
  );
  assert.equal(run.result, { count: 664579 });
  assert.equal(run.progress, { done: 40, total: 40 });
});

test("DELETE mid-run: cancelled, and the process idles within a second", async () => {
  const { refcode } = await start(2, 4e7);
  await waitFor(async () => (await read(refcode)).progress.done >= 2, 30_000, "progress", 50);
  const res = await fetch(`${p.url}/parallel-tasks/${refcode}`, { method: "DELETE" });
  assert.is(res.status, 202);
  assert.is((await res.json()).status, "cancelled");
  await cpuDuring(500, p.pid); // the first half second: the threads stop
  const used = await cpuDuring(500, p.pid);
  assert.ok(used < 100, `${used} ms of CPU in 500 ms after the cancel`);
  assert.is((await read(refcode)).result, null);
});

test("SIGTERM: exits 0", async () => {
  const { refcode } = await start(2, 4e7);
  await waitFor(async () => (await read(refcode)).status === "in_progress", 30_000, "running");
  assert.is((await p.stop()).code, 0);
});

test.run();
