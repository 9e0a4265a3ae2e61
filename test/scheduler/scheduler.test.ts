import { suite } from "uvu";
import * as assert from "uvu/assert";
import { backends, cleanup, onCleanup, testRuntime, waitFor } from "../helpers.ts";
import { System } from "../../src/system.ts";
import type { MetricsRegistry, Runtime } from "../../src/runtime.ts";
import { ManualClock } from "../../src/async/clock.ts";
import { defineSchedule, type ScheduleOptions } from "../../src/scheduler/define.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { type RunRecord, ScheduleStore } from "../../src/scheduler/store.ts";
import { UnavailableError } from "../../src/infra/store.ts";
import type { EnqueueFn } from "../../src/scheduler/runs.ts";

const T0 = Date.parse("2025-06-01T00:00:00Z");
const iso = (ms: number) => new Date(ms).toISOString();
const secs = (runs: RunRecord[]) =>
  runs.map((r) => (r.scheduledAt - T0) / 1000).sort((a, b) => a - b);

async function metric(
  registry: MetricsRegistry,
  name: string,
  labels: Record<string, string> = {},
) {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  const { values } = await m.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
    .reduce((sum, v) => sum + v.value, 0);
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

for (const backend of backends()) {
  const test = suite(`Scheduler on ${backend.name} (manual clock)`);
  test.after(cleanup);

  /** `n` replicas of one system on one store (one key prefix), driven by `clock`. */
  const cluster = async (
    n: number,
    schedules: ScheduleOptions[],
    clock: ManualClock,
    enqueue?: EnqueueFn,
  ) => {
    const system = new System().add(...schedules.map(defineSchedule));
    const redis = backend.name === "redis";
    const first = testRuntime({ redis, system });
    const rts: Runtime[] = [first];
    for (let i = 1; i < n; i++) {
      rts.push(testRuntime({
        redis,
        system,
        env: { KEY_PREFIX: first.config.keyPrefix },
        store: redis ? undefined : first.store,
      }));
    }
    for (const rt of rts) await waitFor(async () => (await rt.store.check()).ok, 5000, "store");
    const make = (rt: Runtime, i: number) =>
      new Scheduler(rt, { clock, replica: `r${i}`, enqueue, manualPollMs: 50 });
    const schedulers = rts.map(make);
    onCleanup(() => Promise.all(schedulers.map((s) => s.stop(Date.now()))).then(() => {}));
    const store = new ScheduleStore(first.store, first.config.keyPrefix);
    /** Every loop of the started schedulers sleeps on the clock (its start-up claim is done). */
    const armed = (loops: number) =>
      waitFor(() => clock.pending >= loops * schedules.length, 5000, "timers armed");
    const start = async () => {
      for (const s of schedulers) await s.start();
      await armed(schedulers.length);
    };
    const idle = () => Promise.all(schedulers.map((s) => s.idle()));
    const runs = (name: string) => store.runs(name, 100);
    /** Starts one replica and waits for its timers. */
    const startOne = async (i: number) => {
      const before = clock.pending;
      await schedulers[i].start();
      await waitFor(() => clock.pending >= before + schedules.length, 5000, "timers armed");
    };
    /** A new replica on the same store (a restart). */
    const restart = async (i: number) => {
      const before = clock.pending;
      schedulers[i] = make(rts[i], i);
      await schedulers[i].start();
      await waitFor(() => clock.pending >= before + schedules.length, 5000, "timers armed");
    };
    return { rts, schedulers, store, start, startOne, idle, runs, restart };
  };

  test("three replicas run each tick exactly once", async () => {
    const clock = new ManualClock(T0);
    const c = await cluster(3, [{ name: "beat", cron: "* * * * * *", action: () => {} }], clock);
    await c.start();
    await clock.advance(10_000);
    await c.idle();
    const runs = await c.runs("beat");
    assert.equal(secs(runs), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.ok(runs.every((r) => r.status === "completed" && r.trigger === "schedule"));
    let lost = 0;
    for (const rt of c.rts) lost += await metric(rt.metrics, "scheduler_claims_lost_total");
    assert.is(lost, 20);
  });

  test("when a replica stops, the others run the next ticks exactly once", async () => {
    const clock = new ManualClock(T0);
    const c = await cluster(3, [{ name: "beat", cron: "* * * * * *", action: () => {} }], clock);
    await c.start();
    await clock.advance(3000);
    const last = (await c.runs("beat"))[0].replica!;
    await c.schedulers[Number(last.slice(1))].stop(Date.now());
    await clock.advance(5000);
    await c.idle();
    const runs = await c.runs("beat");
    assert.equal(secs(runs), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.ok(runs.slice(0, 5).every((r) => r.replica !== last));
  });

  test("timers aim at each tick: lateness never accumulates", async () => {
    const clock = new ManualClock(T0);
    const c = await cluster(1, [{ name: "beat", cron: "* * * * * *", action: () => {} }], clock);
    await c.start();
    const lateness: number[] = [];
    for (let i = 1; i <= 150; i++) {
      const late = (i * 37) % 300; // the timer fires up to 300 ms late, differently each time
      lateness.push(late);
      await clock.jumpTo(T0 + i * 1000 + late);
    }
    await c.idle();
    const runs = (await c.runs("beat")).reverse();
    assert.is(runs.length, 100);
    runs.forEach((r, i) => {
      assert.is(r.scheduledAt, T0 + (51 + i) * 1000);
      assert.is(r.startedAt! - r.scheduledAt, lateness[50 + i]);
    });
  });

  test("missed ticks after downtime: skip, latest and all", async () => {
    const clock = new ManualClock(T0);
    const every = (name: string, missed: "skip" | "latest" | "all") => ({
      name,
      cron: "* * * * * *",
      missed,
      action: () => {},
    });
    const c = await cluster(
      1,
      [every("skip", "skip"), every("latest", "latest"), every("all", "all")],
      clock,
    );
    await c.start();
    await clock.advance(3000);
    await c.schedulers[0].stop(Date.now());
    await clock.advanceTo(T0 + 9500); // down across ticks 4..9
    await c.restart(0);
    await clock.advance(3000);
    await c.idle();
    assert.equal(secs(await c.runs("skip")), [1, 2, 3, 10, 11, 12]);
    assert.equal(secs(await c.runs("latest")), [1, 2, 3, 9, 10, 11, 12]);
    assert.equal(secs(await c.runs("all")), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const catchUps = (await c.runs("all")).filter((r) => r.trigger === "catch-up");
    assert.equal(catchUps.map((r) => (r.scheduledAt - T0) / 1000).sort(), [4, 5, 6, 7, 8, 9]);
    const missed = (schedule: string) =>
      metric(c.rts[0].metrics, "scheduler_ticks_missed_total", { schedule });
    assert.is(await missed("skip"), 6);
    assert.is(await missed("latest"), 5);
    assert.is(await missed("all"), 0);
  });

  test("catch-up runs wait behind a running tick instead of being skipped (overlap skip)", async () => {
    const clock = new ManualClock(T0);
    const gate = deferred();
    const c = await cluster(1, [{
      name: "all",
      cron: "* * * * * *",
      missed: "all",
      action: (ctx) => (ctx.scheduledAt.getTime() === T0 + 10_000 ? gate.promise : undefined),
    }], clock);
    await c.start();
    await clock.advance(3000);
    await c.schedulers[0].stop(Date.now());
    await clock.advanceTo(T0 + 9500);
    await c.restart(0);
    await clock.advanceTo(T0 + 10_000);
    const during = await waitFor(
      async () => {
        const runs = await c.runs("all");
        return secs(runs).includes(10) ? runs : undefined;
      },
      5000,
      "tick 10's run",
    );
    assert.equal(secs(during), [1, 2, 3, 10]); // catch-up waits for tick 10's run
    gate.resolve();
    await c.idle();
    await clock.advance(2000);
    await c.idle();
    const runs = await c.runs("all");
    assert.equal(secs(runs), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    assert.ok(runs.every((r) => r.status === "completed"));
  });

  test("missed ticks older than the catch-up window never run", async () => {
    const clock = new ManualClock(T0);
    const c = await cluster(1, [{
      name: "all",
      cron: "* * * * * *",
      missed: "all",
      catchUpWindowMs: 3500,
      action: () => {},
    }], clock);
    await c.start();
    await clock.advance(3000);
    await c.schedulers[0].stop(Date.now());
    await clock.advanceTo(T0 + 9500);
    await c.restart(0);
    await clock.advance(1000);
    await c.idle();
    // The start-up claim happens at 10 s: the window reaches back to 6.5 s.
    assert.equal(secs(await c.runs("all")), [1, 2, 3, 7, 8, 9, 10]);
  });

  test("a replica that starts just after a tick leaves that tick to the live replica", async () => {
    const clock = new ManualClock(T0);
    const c = await cluster(2, [{
      name: "beat",
      cron: "* * * * * *",
      missed: "skip",
      action: () => {},
    }], clock);
    await c.startOne(0);
    await clock.advance(3000);
    await c.startOne(1); // starts at exactly tick 3, which replica 0 claimed
    await clock.advance(3000);
    await c.idle();
    assert.equal(secs(await c.runs("beat")), [1, 2, 3, 4, 5, 6]);
    assert.is(await metric(c.rts[1].metrics, "scheduler_ticks_missed_total"), 0);
  });

  test("ticks during a store outage are missed, then handled by the policy", async () => {
    const clock = new ManualClock(T0);
    const system = new System().add(defineSchedule({
      name: "beat",
      cron: "* * * * * *",
      missed: "latest",
      action: () => {},
    }));
    const base = testRuntime({ redis: backend.name === "redis", system });
    await waitFor(async () => (await base.store.check()).ok, 5000, "store");
    let down = false;
    const flaky = new Proxy(base.store, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          if (down && prop !== "close") {
            return Promise.reject(new UnavailableError("redis", "connection refused"));
          }
          return value.apply(target, args);
        };
      },
    });
    const rt = testRuntime({ system, store: flaky, env: { KEY_PREFIX: base.config.keyPrefix } });
    const scheduler = new Scheduler(rt, { clock, replica: "r0", manualPollMs: 50 });
    onCleanup(() => scheduler.stop(Date.now()));
    await scheduler.start();
    await waitFor(() => clock.pending >= 1, 5000, "armed");
    await clock.advance(3000);
    down = true;
    await clock.advance(3000);
    down = false;
    await clock.advance(2000);
    await scheduler.idle();
    const runs = await new ScheduleStore(base.store, base.config.keyPrefix).runs("beat", 100);
    assert.equal(secs(runs), [1, 2, 3, 6, 7, 8]);
    assert.equal(runs.filter((r) => r.trigger === "catch-up").map((r) => r.scheduledAt), [
      T0 + 6000,
    ]);
  });

  test("overlap skip records skipped ticks while a run is going; allow runs them", async () => {
    const clock = new ManualClock(T0);
    const gates = { skip: deferred(), allow: deferred() };
    const slow = (name: "skip" | "allow") => ({
      name,
      cron: "* * * * * *",
      overlap: name,
      action: (ctx: { scheduledAt: Date }) =>
        ctx.scheduledAt.getTime() === T0 + 1000 ? gates[name].promise : undefined,
    });
    const c = await cluster(2, [slow("skip"), slow("allow")], clock);
    await c.start();
    await clock.advance(3000);
    gates.skip.resolve();
    gates.allow.resolve();
    await c.idle();
    await clock.advance(1000);
    await c.idle();
    const skip = (await c.runs("skip")).reverse();
    assert.equal(skip.map((r) => r.status), ["completed", "skipped", "skipped", "completed"]);
    const allow = (await c.runs("allow")).reverse();
    assert.equal(allow.map((r) => r.status), ["completed", "completed", "completed", "completed"]);
    assert.is(
      await metric(c.rts[0].metrics, "scheduler_runs_total", { status: "skipped" }) +
        await metric(c.rts[1].metrics, "scheduler_runs_total", { status: "skipped" }),
      2,
    );
  });

  test("a daily 02:30 New York job runs once on the spring-forward and fall-back days", async () => {
    for (
      const [from, to, expected] of [
        ["2025-03-08T00:00:00Z", "2025-03-11T00:00:00Z", [
          "2025-03-08T07:30:00.000Z",
          "2025-03-09T07:30:00.000Z", // 03:30 EDT: 02:30 does not exist that day
          "2025-03-10T06:30:00.000Z",
        ]],
        ["2025-11-01T00:00:00Z", "2025-11-04T00:00:00Z", [
          "2025-11-01T06:30:00.000Z",
          "2025-11-02T07:30:00.000Z",
          "2025-11-03T07:30:00.000Z",
        ]],
      ] as const
    ) {
      const clock = new ManualClock(from);
      const c = await cluster(2, [{
        name: "nightly",
        cron: "30 2 * * *",
        timezone: "America/New_York",
        action: () => {},
      }], clock);
      await c.start();
      await clock.advanceTo(to);
      await c.idle();
      assert.equal((await c.runs("nightly")).map((r) => iso(r.scheduledAt)).reverse(), expected);
    }
  });

  test("a 01:30 New York job never runs twice on the fall-back day, even across restarts", async () => {
    const clock = new ManualClock("2025-11-02T04:00:00Z");
    const c = await cluster(2, [{
      name: "early",
      cron: "30 1 * * *",
      timezone: "America/New_York",
      action: () => {},
    }], clock);
    await c.startOne(0);
    await clock.advanceTo("2025-11-02T06:10:00Z"); // 01:10 EST, the repeated hour
    await c.schedulers[0].stop(Date.now());
    await c.startOne(1);
    await clock.advanceTo("2025-11-03T12:00:00Z");
    await c.idle();
    assert.equal((await c.runs("early")).map((r) => iso(r.scheduledAt)).reverse(), [
      "2025-11-02T05:30:00.000Z", // 01:30 EDT
      "2025-11-03T06:30:00.000Z", // 01:30 EST the next day
    ]);
  });

  test("a long interval is waited for on the clock, not in real time", async () => {
    const clock = new ManualClock(T0);
    const c = await cluster(1, [{ name: "yearly", cron: "0 0 1 1 *", action: () => {} }], clock);
    await c.start();
    await clock.advanceTo("2027-01-02T00:00:00Z");
    await c.idle();
    assert.equal((await c.runs("yearly")).map((r) => iso(r.scheduledAt)).reverse(), [
      "2026-01-01T00:00:00.000Z",
      "2027-01-01T00:00:00.000Z",
    ]);
  });

  test("enqueue actions record the refcode; failing actions are recorded failed", async () => {
    const clock = new ManualClock(T0);
    let n = 0;
    const enqueued: unknown[] = [];
    const enqueue: EnqueueFn = (_rt, type, input, options) => {
      enqueued.push({ type, input, key: options.idempotencyKey });
      return Promise.resolve(`ref-${++n}`);
    };
    const c = await cluster(
      2,
      [
        { name: "report", cron: "0 2 * * *", action: { enqueue: "orders-report", input: {} } },
        {
          name: "broken",
          cron: "0 2 * * *",
          action: () => {
            throw new Error("no luck");
          },
        },
      ],
      clock,
      enqueue,
    );
    await c.start();
    await clock.advance(3 * 3600_000);
    await c.idle();
    const [report] = await c.runs("report");
    assert.is(report.status, "completed");
    assert.is(report.refcode, "ref-1");
    assert.is(enqueued.length, 1);
    assert.equal((enqueued[0] as { type: string }).type, "orders-report");
    const [broken] = await c.runs("broken");
    assert.is(broken.status, "failed");
    assert.is(broken.error, "no luck");
  });

  test("a manual run runs once on one of three replicas", async () => {
    const clock = new ManualClock(T0);
    let calls = 0;
    const c = await cluster(3, [{
      name: "nightly",
      cron: "0 2 * * *",
      action: () => void calls++,
    }], clock);
    await c.start();
    const queued = await c.store.queueManual("nightly", "manual-1", clock.now());
    assert.is(queued.status, "queued");
    const [run] = await waitFor(
      async () => {
        const runs = await c.runs("nightly");
        return runs[0]?.status === "completed" ? runs : null;
      },
      5000,
      "manual run",
    );
    assert.is(run.trigger, "manual");
    assert.ok(run.replica);
    // Every replica has looked for requests since, and its runs have ended: none ran it again.
    await c.idle();
    assert.is(calls, 1);
    assert.is((await c.runs("nightly")).length, 1);
  });

  test("stop() stops ticking and records a run still going at the deadline as failed", async () => {
    const clock = new ManualClock(T0);
    let aborted = false;
    const c = await cluster(1, [{
      name: "stuck",
      cron: "* * * * * *",
      action: (ctx) =>
        new Promise<void>((resolve) => {
          ctx.signal.addEventListener("abort", () => {
            aborted = true;
            resolve();
          });
        }),
    }], clock);
    await c.start();
    await clock.advance(1000);
    const started = Date.now();
    await c.schedulers[0].stop(Date.now() + 200);
    assert.ok(Date.now() - started < 2000);
    assert.ok(aborted);
    await clock.advance(3000);
    const runs = await c.runs("stuck");
    assert.is(runs.length, 1);
    assert.is(runs[0].status, "failed");
    assert.match(runs[0].error!, /stopped before the run finished/);
  });

  test.run();
}
