/**
 * Issue 3's acceptance list on real Redis with real processes: an `http` process and two
 * `async-worker` processes of the example system, plus a Redis of our own for the restart.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { System } from "../../src/system.ts";
import { taskKeys } from "../../src/tasks/keys.ts";
import {
  cleanup,
  onCleanup,
  type Program,
  REDIS_URL,
  spawnProgram,
  testRuntime,
  unique,
  waitFor,
} from "../helpers.ts";

test.after(cleanup);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface View {
  refcode: string;
  status: string;
  result: unknown;
  error: string | null;
  attempts: number;
  progress: number | null;
  updated_at: string;
}

const jsonPost = (body: unknown) => ({
  method: "POST",
  body: JSON.stringify(body),
  headers: { "content-type": "application/json" },
});

async function call(url: string, init?: RequestInit): Promise<{ status: number; body: any }> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Runs `work` over `items` with at most `n` at once. */
async function pool<T, R>(items: T[], n: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i]);
    }
  }));
  return out;
}

/** Sum of a counter or gauge over the lines whose labels include every `labels` pair. */
async function metric(p: Program, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${p.url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) {
      sum += Number(line.slice(line.lastIndexOf(" ") + 1));
    }
  }
  return sum;
}

// One deployment (KEY_PREFIX) for the first tests: an API process and two workers.
const rt = testRuntime({ redis: true, system: new System() });
const prefix = rt.config.keyPrefix;
const keys = taskKeys(prefix);
const env = { REDIS_URL, KEY_PREFIX: prefix, LOG_LEVEL: "info", SHUTDOWN_TIMEOUT_MS: "3000" };
let apiUrl = "";
let workers: Program[] = [];

const enqueue = async (input: unknown) => {
  const res = await call(`${apiUrl}/tasks/sleep`, jsonPost(input));
  assert.is(res.status, 202, JSON.stringify(res.body));
  return res.body.refcode as string;
};
const read = async (refcode: string, wait = 0) =>
  (await call(`${apiUrl}/tasks/${refcode}${wait ? `?wait=${wait}` : ""}`)).body as View;
const workerOf = async (refcode: string) =>
  String(await rt.store.command(["HGET", keys.record(refcode), "worker"]));

test.before(async () => {
  const [api, ...started] = await Promise.all([
    spawnProgram({ ...env, ROLE: "http" }),
    spawnProgram({ ...env, ROLE: "async-worker" }),
    spawnProgram({ ...env, ROLE: "async-worker" }),
  ]);
  apiUrl = api.url;
  workers = started;
});

test("1000 sleep {ms:50} tasks over two workers: all completed, each run exactly once", async () => {
  // 50 ms each: more than one worker drains while the POSTs arrive, so a backlog forms and both
  // workers take from it (5 ms tasks were all taken by whichever worker woke first).
  const refs = await pool(Array.from({ length: 1000 }), 25, () => enqueue({ ms: 50 }));
  assert.is(new Set(refs).size, 1000);
  const views = await pool(refs, 25, (r) => read(r, 30));
  const bad = views.filter((v) =>
    v.status !== "completed" || v.attempts !== 1 || (v.result as any)?.slept_ms !== 50
  );
  assert.equal(bad, []);
  const starts = await Promise.all(
    workers.map((w) => metric(w, "tasks_total", { type: "sleep", status: "in_progress" })),
  );
  assert.is(starts[0] + starts[1], 1000, `starts per worker ${starts}`);
  assert.ok(starts[0] > 0 && starts[1] > 0, `both workers ran tasks: ${starts}`);
});

test("unknown type → 404, bad input → 400 with issues, unknown refcode → 404", async () => {
  assert.is((await call(`${apiUrl}/tasks/nope`, jsonPost({}))).status, 404);
  const bad = await call(`${apiUrl}/tasks/sleep`, jsonPost({ ms: "soon" }));
  assert.is(bad.status, 400);
  assert.is(bad.body.issues[0].path, "ms");
  assert.is((await call(`${apiUrl}/tasks/t_${"q".repeat(26)}`)).status, 404);
  const refcode = await enqueue({ ms: 1 });
  // `t_` + 26 base32 characters: 130 random bits.
  assert.match(refcode, /^t_[a-z2-7]{26}$/);
});

test("sleep {fail:true}: failed after 3 attempts, in the dead-task list, retried from there", async () => {
  const refcode = await enqueue({ ms: 1, fail: true });
  const failed = await read(refcode, 20);
  assert.equal([failed.status, failed.attempts], ["failed", 3]);
  assert.match(failed.error ?? "", /attempt 3/);
  const dead = await call(`${apiUrl}/tasks?status=failed&type=sleep`);
  assert.ok(dead.body.some((t: View) => t.refcode === refcode));
  const retried = await call(`${apiUrl}/tasks/${refcode}/retry`, { method: "POST" });
  assert.is(retried.status, 202);
  assert.equal([retried.body.status, retried.body.attempts], ["queued", 0]);
  const again = await read(refcode, 20);
  assert.equal([again.status, again.attempts], ["failed", 3]);
  assert.ok(again.updated_at > failed.updated_at);
});

test("DELETE a running sleep {ms:60000}: cancelled within 1 s, its handler stopped, not retried", async () => {
  const refcode = await enqueue({ ms: 60_000 });
  await waitFor(async () => (await read(refcode)).status === "in_progress", 10_000);
  const asked = Date.now();
  const res = await call(`${apiUrl}/tasks/${refcode}`, { method: "DELETE" });
  assert.is(res.status, 202);
  const view = await read(refcode, 5);
  assert.is(view.status, "cancelled");
  assert.ok(Date.now() - asked < 1000, `cancelled after ${Date.now() - asked} ms`);
  // The slot frees only when the handler returns: no sleep handler runs on any worker.
  await waitFor(
    async () => {
      const running = await Promise.all(
        workers.map((w) => metric(w, "tasks_running", { type: "sleep" })),
      );
      return running.every((n) => n === 0);
    },
    2000,
    "the handler to stop",
  );
  // Nothing holds the task to run it again: no lease, no retry scheduled, not pending.
  const shard = keys.shardOf(refcode);
  assert.equal(
    await Promise.all([
      rt.store.command(["ZSCORE", shard.active, refcode]),
      rt.store.command(["ZSCORE", shard.scheduled("sleep"), refcode]),
      rt.store.command(["LPOS", shard.pending("sleep"), refcode]),
    ]),
    [null, null, null],
  );
  const later = await read(refcode);
  assert.equal([later.status, later.attempts], ["cancelled", 1]);
  const done = await enqueue({ ms: 1 });
  assert.is((await read(done, 10)).status, "completed");
  assert.is((await call(`${apiUrl}/tasks/${done}`, { method: "DELETE" })).status, 409);
});

test("kill -9 a worker running tasks: each ends completed on the other worker, attempts 2", async () => {
  // More than one worker's slots (sleep has 20), so both hold some.
  const refs = await pool(Array.from({ length: 30 }), 30, () => enqueue({ ms: 2000 }));
  await waitFor(
    async () => {
      const views = await Promise.all(refs.map((r) => read(r)));
      return views.every((v) => v.status === "in_progress");
    },
    10_000,
    "every task to run",
  );
  // The victim is whichever worker holds more of them (claims are not split evenly).
  const holders = await Promise.all(refs.map((r) => workerOf(r)));
  const count = (w: { pid: number }) => holders.filter((h) => h.includes(`-${w.pid}-`)).length;
  const [victim, survivor] = count(workers[0]) >= count(workers[1])
    ? [workers[0], workers[1]]
    : [workers[1], workers[0]];
  const held = refs.filter((_, i) => holders[i].includes(`-${victim.pid}-`));
  assert.ok(held.length >= 10, `the victim holds ${held.length} tasks`);
  victim.kill("SIGKILL");
  await victim.exited;
  for (const r of refs) {
    const view = await read(r, 30);
    assert.is(view.status, "completed", r);
    assert.equal(view.result, { slept_ms: 2000 });
    if (held.includes(r)) {
      assert.is(view.attempts, 2);
      assert.ok((await workerOf(r)).includes(`-${survivor.pid}-`));
    } else {
      assert.is(view.attempts, 1);
    }
  }
  assert.is(await metric(survivor, "task_reclaims_total", { type: "sleep" }), held.length);
});

test("Redis (AOF on) late at start-up, then restarted under a stream of POSTs: every 202 task completes; 503, never 500", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tasks-aof-" });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const startRedis = () =>
    new Deno.Command("redis-server", {
      args: [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
        "--dir",
        dir,
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
  const ping = async () => {
    const out = await new Deno.Command("redis-cli", { args: ["-p", String(port), "ping"] })
      .output().catch(() => null);
    return out && new TextDecoder().decode(out.stdout).trim() === "PONG";
  };
  // The program starts first: with Redis not there yet it serves probes and answers 503.
  const app = await spawnProgram({
    REDIS_URL: `redis://127.0.0.1:${port}`,
    KEY_PREFIX: unique("aof"),
    ROLE: "http,async-worker",
  });
  assert.is((await call(`${app.url}/healthz`)).status, 200);
  assert.is((await call(`${app.url}/readyz`)).status, 503);
  assert.is((await call(`${app.url}/tasks/sleep`, jsonPost({ ms: 5 }))).status, 503);
  let redis = startRedis();
  onCleanup(async () => {
    try {
      redis.kill("SIGKILL");
      await redis.status;
    } catch { /* gone */ }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  });
  await waitFor(ping, 10_000, "redis to start");

  const accepted: string[] = [];
  const statuses = new Map<number, number>();
  let streaming = true;
  const stream = (async () => {
    while (streaming) {
      let status = 0;
      try {
        const res = await fetch(`${app.url}/tasks/sleep`, jsonPost({ ms: 5 }));
        status = res.status;
        const body = await res.json();
        if (status === 202) accepted.push(body.refcode);
      } catch {
        status = -1;
      }
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      await sleep(10); // The stream's pace: POSTs keep coming through the restart.
    }
  })();
  await waitFor(() => accepted.length >= 50, 10_000, "tasks before the restart");
  redis.kill("SIGKILL");
  await redis.status;
  const before = accepted.length;
  await waitFor(() => (statuses.get(503) ?? 0) >= 5, 10_000, "503 answers during the outage");
  redis = startRedis();
  await waitFor(ping, 10_000, "redis to restart");
  await waitFor(() => accepted.length >= before + 50, 20_000, "tasks after the restart");
  streaming = false;
  await stream;

  assert.equal(
    [...statuses.keys()].filter((s) => s !== 202 && s !== 503),
    [],
    `statuses ${JSON.stringify([...statuses])}`,
  );
  const views = await pool(accepted, 10, (refcode) =>
    waitFor(
      async () => {
        const res = await call(`${app.url}/tasks/${refcode}?wait=10`);
        // Asked again while not completed yet, or 503 while the store is away.
        if (res.status === 503 || (res.status === 200 && res.body.status !== "completed")) {
          return null;
        }
        return res.body as View;
      },
      30_000,
      `task ${refcode} to complete`,
      200,
    ));
  assert.equal(views.filter((v) => v.status !== "completed"), []);
  await app.stop();
});

test.run();
