/**
 * Issue 5's acceptance on real Redis with real processes: three scheduler replicas, kill -9,
 * downtime and the missed policies, manual runs, and a bad SCHEDULE_HEARTBEAT_CRON.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  cleanup,
  type Program,
  REDIS_URL,
  runProgram,
  spawnProgram,
  testRuntime,
  waitFor,
} from "../helpers.ts";
import { type RunRecord, ScheduleStore } from "../../src/scheduler/store.ts";

test.after(cleanup);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sec = (ms: number) => Math.round(ms / 1000);

async function setup() {
  const rt = testRuntime({ redis: true });
  await waitFor(async () => (await rt.store.check()).ok, 5000, "redis");
  const store = new ScheduleStore(rt.store, rt.config.keyPrefix);
  const env = { REDIS_URL, KEY_PREFIX: rt.config.keyPrefix, LOG_LEVEL: "info" };
  return { store, env };
}

async function metric(p: Program, name: string, schedule: string): Promise<number> {
  const text = await (await fetch(`${p.url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name}{`) && line.includes(`schedule="${schedule}"`)) {
      sum += Number(line.split(" ").at(-1));
    }
  }
  return sum;
}

/** Every whole second in [from, to] ran exactly once: returns the runs by second. */
function assertEachTickOnce(runs: RunRecord[], from: number, to: number): Map<number, RunRecord> {
  const bySecond = new Map<number, RunRecord[]>();
  for (const r of runs) {
    bySecond.set(sec(r.scheduledAt), [...(bySecond.get(sec(r.scheduledAt)) ?? []), r]);
  }
  const out = new Map<number, RunRecord>();
  for (let s = Math.ceil(from / 1000); s <= Math.floor(to / 1000); s++) {
    const found = bySecond.get(s) ?? [];
    assert.is(
      found.length,
      1,
      `tick ${new Date(s * 1000).toISOString()} ran ${found.length} times`,
    );
    assert.is(found[0].status, "completed");
    out.set(s, found[0]);
  }
  return out;
}

test("three replicas run each tick once; after kill -9 of the last runner the rest still do", async () => {
  const { store, env } = await setup();
  const programs = await Promise.all(
    [0, 1, 2].map(() =>
      spawnProgram({ ...env, ROLE: "scheduler", SCHEDULE_HEARTBEAT_CRON: "* * * * * *" })
    ),
  );
  const allUp = Date.now();
  await sleep(10_000); // Real processes on the wall clock: ten seconds of real ticks to count.
  const windowEnd = Date.now() - 1500;
  const runs = await store.runs("heartbeat", 100);
  const window = assertEachTickOnce(runs, allUp + 1000, windowEnd);
  assert.ok(window.size >= 7, `only ${window.size} ticks in the window`);
  const pids = programs.map((p) => p.pid);
  for (const r of window.values()) {
    assert.ok(pids.some((pid) => r.replica!.includes(`-${pid}-`)), `replica ${r.replica}`);
  }
  // No run hides behind the records: each process counted only its own runs. Ticks go on
  // while the three are read, so the count lies between the records read before and after.
  const done = async () =>
    (await store.runs("heartbeat", 100)).filter((r) => r.status === "completed").length;
  const recordedBefore = await done();
  let completed = 0;
  let lost = 0;
  for (const p of programs) {
    completed += await metric(p, "scheduler_runs_total", "heartbeat");
    lost += await metric(p, "scheduler_claims_lost_total", "heartbeat");
  }
  const recordedAfter = await done();
  assert.ok(
    recordedBefore <= completed && completed <= recordedAfter,
    `${completed} runs counted, ${recordedBefore}..${recordedAfter} recorded`,
  );
  assert.ok(lost >= 2 * window.size, `claims lost ${lost}`);

  // Mid-second, so the victim is not half-way through a claim.
  await sleep(1500 - (Date.now() % 1000));
  const [last] = await store.runs("heartbeat", 1);
  const victim = programs.find((p) => last.replica!.includes(`-${p.pid}-`))!;
  victim.kill("SIGKILL");
  const killedAt = Date.now();
  await victim.exited;
  await sleep(6000); // Real processes: the survivors' ticks after the kill, on the wall clock.
  const after = assertEachTickOnce(
    await store.runs("heartbeat", 100),
    killedAt,
    Date.now() - 1500,
  );
  assert.ok(after.size >= 4, `only ${after.size} ticks after the kill`);
  for (const r of after.values()) {
    assert.not.match(r.replica!, `-${victim.pid}-`, "a tick ran on the killed replica");
  }
  await Promise.all(programs.filter((p) => p !== victim).map((p) => p.stop()));
});

test("downtime across 5+ ticks: missed skip, latest and all do what they say", async () => {
  const { store, env } = await setup();
  const fixture = { entry: "test/fixtures/scheduler-program.ts" };
  const programEnv = {
    ...env,
    ROLE: "scheduler",
    FIXTURE_MISSED: "1",
    SCHEDULE_HEARTBEAT_CRON: "off",
  };
  const first = await spawnProgram(programEnv, fixture);
  await waitFor(async () => (await store.runs("missed-all", 3)).length >= 2, 10_000, "runs");
  assert.is((await first.stop()).code, 0);
  const stoppedAt = Date.now();
  await sleep(5200); // No replica runs while the ticks of five seconds are missed (wall clock).
  const second = await spawnProgram(programEnv, fixture);
  await sleep(2500); // The new real process catches the missed ticks up.
  await second.stop();

  for (const policy of ["skip", "latest", "all"] as const) {
    const runs = await store.runs(`missed-${policy}`, 100);
    const seconds = new Set(runs.map((r) => sec(r.scheduledAt)));
    assert.is(seconds.size, runs.length, `${policy}: a tick ran twice`);
    const before = runs.filter((r) => r.scheduledAt <= stoppedAt);
    const lastBefore = Math.max(...before.map((r) => sec(r.scheduledAt)));
    const live = runs.filter((r) => r.trigger === "schedule" && r.scheduledAt > stoppedAt);
    const firstAfter = Math.min(...live.map((r) => sec(r.scheduledAt)));
    const gap: number[] = [];
    for (let s = lastBefore + 1; s < firstAfter; s++) gap.push(s);
    assert.ok(gap.length >= 5, `${policy}: only ${gap.length} ticks of downtime`);
    const ranInGap = gap.filter((s) => seconds.has(s));
    const catchUps = runs.filter((r) => r.trigger === "catch-up").map((r) => sec(r.scheduledAt));
    if (policy === "skip") {
      assert.equal(ranInGap, [], "skip runs no missed tick");
    } else if (policy === "latest") {
      assert.equal(ranInGap, [gap.at(-1)], "latest runs the newest missed tick once");
    } else {
      assert.equal(ranInGap, gap, "all runs every missed tick");
    }
    assert.equal(catchUps.sort(), ranInGap);
    // Live ticks after the restart: every one once.
    assertEachTickOnce(runs, firstAfter * 1000, Math.max(...live.map((r) => r.scheduledAt)));
  }
});

test("POST /schedules/orders-report-nightly/run enqueues one orders-report task, its refcode recorded", async () => {
  const { env } = await setup();
  const programs = await Promise.all([
    spawnProgram({ ...env, ROLE: "http,async-worker", SCHEDULE_HEARTBEAT_CRON: "off" }),
    spawnProgram({ ...env, ROLE: "scheduler", SCHEDULE_HEARTBEAT_CRON: "off" }),
    spawnProgram({ ...env, ROLE: "scheduler", SCHEDULE_HEARTBEAT_CRON: "off" }),
  ]);
  const api = programs[0].url;
  const res = await fetch(`${api}/schedules/orders-report-nightly/run`, { method: "POST" });
  assert.is(res.status, 202);
  await res.body?.cancel();
  const [run] = await waitFor(
    async () => {
      const list = await (await fetch(`${api}/schedules/orders-report-nightly/runs`)).json();
      return list[0]?.status === "completed" ? list : null;
    },
    10_000,
    "the manual run",
  );
  assert.match(run.refcode, /^\S{16,}$/);
  const task = await waitFor(
    async () => {
      const t = await (await fetch(`${api}/tasks/${run.refcode}?wait=5`)).json();
      return t.status === "completed" ? t : null;
    },
    10_000,
    "the orders-report task",
  );
  assert.is(task.type, "orders-report");
  assert.equal(Object.keys(task.result).sort(), ["orders", "processed"]);
  await sleep(500); // Real processes: a second run of the manual request would show by now.
  const runs = await (await fetch(`${api}/schedules/orders-report-nightly/runs`)).json();
  assert.is(runs.length, 1);
  await Promise.all(programs.map((p) => p.stop()));
});

test("an invalid SCHEDULE_HEARTBEAT_CRON stops start-up with exit 2, naming it", async () => {
  for (const role of ["scheduler", "http"]) {
    const out = await runProgram({ ROLE: role, SCHEDULE_HEARTBEAT_CRON: "61 * * * *" });
    assert.is(out.code, 2, `${role}: ${out.stdout}${out.stderr}`);
    const text = out.stdout + out.stderr;
    assert.match(text, /SCHEDULE_HEARTBEAT_CRON: /);
    assert.not.match(text, /at .*\.ts:\d+/); // one line, no stack
  }
});

test.run();
