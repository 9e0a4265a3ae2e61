import { suite } from "uvu";
import * as assert from "uvu/assert";
import { backends, cleanup, onCleanup, storeTime, testRuntime, waitFor } from "../helpers.ts";
import type { Store } from "../../src/infra/store.ts";
import { System } from "../../src/system.ts";
import type { Runtime } from "../../src/runtime.ts";
import { defineSchedule } from "../../src/scheduler/define.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { MAX_TAKEOVERS } from "../../src/scheduler/recoverer.ts";
import { ScheduleStore } from "../../src/scheduler/store.ts";

const LEASE_MS = 600;

for (const backend of backends()) {
  const test = suite(`RunRecoverer on ${backend.name}`);
  test.after(cleanup);

  /** Two replicas of one every-second schedule on one store; `ran` counts actions per tick. */
  const pair = async (action: () => Promise<void> | void = () => {}, store?: Store) => {
    const ran = new Map<number, number>();
    const system = new System().add(defineSchedule({
      name: "beat",
      cron: "* * * * * *",
      action: async (ctx) => {
        const tick = ctx.scheduledAt.getTime();
        ran.set(tick, (ran.get(tick) ?? 0) + 1);
        await action();
      },
    }));
    const redis = backend.name === "redis";
    const first = testRuntime({ redis, system, store });
    const second: Runtime = testRuntime({
      redis,
      system,
      env: { KEY_PREFIX: first.config.keyPrefix },
      store: redis ? undefined : first.store,
    });
    for (const rt of [first, second]) {
      await waitFor(async () => (await rt.store.check()).ok, 5000, "store");
    }
    return { ran, first, second, store: new ScheduleStore(first.store, first.config.keyPrefix) };
  };

  test("a replica killed between claiming a tick and running it: another runs that tick, once", async () => {
    const { ran, first, second, store } = await pair();
    // The fault: after its first claim, replica "dead" stops for good (no action, no renewal).
    let hung: string | undefined;
    let revive!: () => void;
    const revived = new Promise<void>((resolve) => (revive = resolve));
    const dead = new Scheduler(first, {
      replica: "dead",
      leaseMs: LEASE_MS,
      faults: {
        afterClaim: async (_schedule, runId) => {
          hung ??= runId;
          await revived;
        },
      },
    });
    const alive = new Scheduler(second, { replica: "alive", leaseMs: LEASE_MS });
    onCleanup(async () => {
      revive();
      await Promise.all([dead.stop(Date.now() + 1000), alive.stop(Date.now() + 1000)]);
    });
    await dead.start();
    await waitFor(() => hung !== undefined, 5000, "the dead replica's claim");
    await alive.start();
    const taken = await waitFor(
      async () => {
        const run = (await store.runs("beat", 100)).find((r) => r.id === hung);
        return run?.status === "completed" ? run : undefined;
      },
      10_000,
      "the orphaned run completed by the other replica",
    );
    assert.is(taken.replica, "alive");
    // Every tick since the dead claim ran exactly once, the orphaned one included.
    const since = await waitFor(
      async () => {
        const done = (await store.runs("beat", 100)).filter((r) =>
          r.scheduledAt >= taken.scheduledAt && r.status === "completed"
        );
        return done.length >= 2 ? done : undefined;
      },
      10_000,
      "two runs since the takeover",
    );
    for (const r of since) assert.is(ran.get(r.scheduledAt), 1, `tick ${r.scheduledAt}`);
    assert.is(ran.get(taken.scheduledAt), 1);
    // The dead replica, back after the takeover, does not run the tick again.
    revive();
    await dead.idle(); // the revived run went as far as it goes
    assert.is(ran.get(taken.scheduledAt), 1);
    const after = (await store.runs("beat", 100)).find((r) => r.id === hung)!;
    assert.is(after.replica, "alive");
    assert.is(after.status, "completed");
  });

  test("a live replica's long run is never taken over (exactly once)", async () => {
    // Runs four leases long, on real loops: the replicas' renewals must keep them.
    const { ran, first, second, store } = await pair(() =>
      new Promise((r) => setTimeout(r, 4 * LEASE_MS))
    );
    const a = new Scheduler(first, { replica: "a", leaseMs: LEASE_MS });
    const b = new Scheduler(second, { replica: "b", leaseMs: LEASE_MS });
    onCleanup(() =>
      Promise.all([a.stop(Date.now() + 5000), b.stop(Date.now() + 5000)]).then(() => {})
    );
    await a.start();
    await b.start();
    await waitFor(
      async () =>
        (await store.runs("beat", 100)).filter((r) => r.status === "completed").length >= 3,
      15_000,
      "three long runs completed",
    );
    for (const [tick, n] of ran) assert.is(n, 1, `tick ${tick} ran ${n} times`);
    for (const rt of [first, second]) {
      const m = await rt.metrics.getSingleMetric("scheduler_runs_taken_over_total")?.get();
      assert.is((m?.values ?? []).reduce((s, v) => s + v.value, 0), 0);
    }
  });

  test("ScheduleStore fences a taken-over run: its first replica can neither renew nor finish it", async () => {
    // Leases are keys' TTLs, on the store's clock: a manual one on the embedded engine.
    const time = storeTime(backend);
    const { store } = await pair(undefined, time.store);
    const t = time.now();
    const record = {
      trigger: "schedule" as const,
      scheduledAt: t,
      startedAt: t,
      finishedAt: null,
      status: "running" as const,
      replica: "r1",
    };
    await store.begin("beat", {
      id: "run-1",
      claimUpTo: t,
      lock: "skip",
      leaseMs: 200,
      now: t,
      record,
    });
    assert.is(await store.takeOver("beat", "run-1", "r2", 5000, t, 3), "kept", "lease still held");
    await time.elapse(350);
    assert.equal((await store.orphans("beat", 10)).map((r) => r.id), ["run-1"]);
    assert.is(await store.takeOver("beat", "run-1", "r2", 5000, time.now(), 3), "taken");
    assert.is(await store.takeOver("beat", "run-1", "r3", 5000, time.now(), 3), "kept");
    assert.is(await store.renew("beat", "run-1", 5000, "r1"), false);
    assert.is(
      await store.finish("beat", "run-1", "r1", { status: "failed", finishedAt: time.now() }),
      false,
    );
    assert.is(await store.renew("beat", "run-1", 5000, "r2"), true);
    assert.is(
      await store.finish("beat", "run-1", "r2", { status: "completed", finishedAt: time.now() }),
      true,
    );
    const [run] = await store.runs("beat", 1);
    assert.equal([run.status, run.replica], ["completed", "r2"]);
  });

  test("a run whose replicas keep dying is failed after MAX_TAKEOVERS takeovers", async () => {
    const time = storeTime(backend);
    const { store } = await pair(undefined, time.store);
    const t = time.now();
    await store.begin("beat", {
      id: "poison",
      claimUpTo: t,
      lock: "allow",
      leaseMs: 50,
      now: t,
      record: {
        trigger: "schedule",
        scheduledAt: t,
        startedAt: t,
        finishedAt: null,
        status: "running",
        replica: "r0",
      },
    });
    for (let i = 1; i <= MAX_TAKEOVERS; i++) {
      await time.elapse(120);
      assert.is(
        await store.takeOver("beat", "poison", `r${i}`, 50, time.now(), MAX_TAKEOVERS),
        "taken",
      );
    }
    await time.elapse(120);
    assert.is(
      await store.takeOver("beat", "poison", "rx", 50, time.now(), MAX_TAKEOVERS),
      "failed",
    );
    const [run] = await store.runs("beat", 1);
    assert.is(run.status, "failed");
    assert.match(run.error!, /3 times in a row/);
  });

  test.run();
}
