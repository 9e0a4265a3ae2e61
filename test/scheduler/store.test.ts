import { suite } from "uvu";
import * as assert from "uvu/assert";
import { backends, cleanup, timedRuntime, waitFor } from "../helpers.ts";
import { RUNS_KEPT, ScheduleStore } from "../../src/scheduler/store.ts";
import { scheduleKeys } from "../../src/scheduler/keys.ts";

const T0 = Date.parse("2025-01-01T00:00:00Z");

for (const backend of backends()) {
  const test = suite(`ScheduleStore on ${backend.name}`);
  test.after(cleanup);

  // Leases are key expiries: on the embedded engine they follow a manual clock.
  const setup = async () => {
    const { rt, time } = await timedRuntime(backend);
    return { rt, store: new ScheduleStore(rt.store, rt.config.keyPrefix), elapse: time.elapse };
  };
  const record = (tick: number, replica = "r1") => ({
    trigger: "schedule" as const,
    scheduledAt: tick,
    startedAt: tick + 3,
    finishedAt: null,
    status: "running" as const,
    replica,
  });
  const begin = (
    store: ScheduleStore,
    tick: number,
    opts: { id?: string; claim?: boolean; lock?: "skip" | "allow" | "force"; leaseMs?: number } =
      {},
  ) =>
    store.begin("job", {
      id: opts.id ?? `run-${tick}`,
      claimUpTo: opts.claim === false ? null : tick,
      lock: opts.lock ?? "skip",
      leaseMs: opts.leaseMs ?? 30_000,
      now: tick + 3,
      record: record(tick),
    });

  test("claim() moves the mark forward only, and returns the previous one", async () => {
    const { store } = await setup();
    assert.equal(await store.claim("job", T0), { won: true, previous: null });
    assert.equal(await store.claim("job", T0), { won: false, previous: T0 });
    assert.equal(await store.claim("job", T0 - 1000), { won: false, previous: T0 });
    assert.equal(await store.claim("job", T0 + 5000), { won: true, previous: T0 });
    assert.is(await store.claimed("job"), T0 + 5000);
  });

  test("begin() gives a tick to exactly one of many concurrent claimers", async () => {
    const { store } = await setup();
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, (_, i) => begin(store, T0, { id: `r${i}` })),
    );
    assert.is(outcomes.filter((o) => o.outcome === "running").length, 1);
    assert.is(outcomes.filter((o) => o.outcome === "lost").length, 9);
    assert.is((await store.runs("job", 100)).length, 1);
  });

  test("begin() records a skipped run while the overlap lock is held", async () => {
    const { store } = await setup();
    assert.is((await begin(store, T0)).outcome, "running");
    const second = await begin(store, T0 + 1000);
    assert.equal(second, { outcome: "skipped", previous: T0 });
    const [skipped, first] = await store.runs("job", 10);
    assert.is(skipped.status, "skipped");
    assert.is(skipped.startedAt, null);
    assert.is(skipped.finishedAt, T0 + 1003);
    assert.is(first.status, "running");
    // `allow` ignores the lock; finishing releases it.
    assert.is((await begin(store, T0 + 2000, { lock: "allow" })).outcome, "running");
    assert.ok(
      await store.finish("job", `run-${T0}`, "r1", { status: "completed", finishedAt: T0 + 10 }),
    );
    assert.is((await begin(store, T0 + 3000)).outcome, "running");
  });

  test("finish() writes a running run once, with refcode and error", async () => {
    const { store } = await setup();
    await begin(store, T0);
    assert.ok(
      await store.finish("job", `run-${T0}`, "r1", {
        status: "completed",
        finishedAt: T0 + 50,
        refcode: "abc",
      }),
    );
    assert.not.ok(
      await store.finish("job", `run-${T0}`, "r1", { status: "failed", finishedAt: T0 + 60 }),
    );
    const [run] = await store.runs("job", 1);
    assert.equal(run, {
      id: `run-${T0}`,
      trigger: "schedule",
      scheduledAt: T0,
      startedAt: T0 + 3,
      finishedAt: T0 + 50,
      status: "completed",
      replica: "r1",
      refcode: "abc",
      error: null,
    });
  });

  test(`runs() keeps the newest ${RUNS_KEPT} and deletes the rest`, async () => {
    const { rt, store } = await setup();
    for (let i = 0; i < RUNS_KEPT + 5; i++) {
      await begin(store, T0 + i * 1000, { lock: "allow" });
    }
    const runs = await store.runs("job", 1000);
    assert.is(runs.length, RUNS_KEPT);
    assert.is(runs[0].scheduledAt, T0 + (RUNS_KEPT + 4) * 1000);
    assert.is(runs.at(-1)!.scheduledAt, T0 + 5000);
    const k = scheduleKeys(rt.config.keyPrefix, "job");
    assert.is(await rt.store.command(["EXISTS", `${k.runPrefix}run-${T0}`]), 0);
    assert.is(await rt.store.command(["EXISTS", `${k.runPrefix}run-${T0 + 5000}`]), 1);
  });

  test("runs() reports a running run whose lease expired as failed; renew() keeps it", async () => {
    const { store, elapse } = await setup();
    await begin(store, T0, { leaseMs: 150, lock: "allow" });
    await begin(store, T0 + 1000, { leaseMs: 150, lock: "allow" });
    await elapse(80);
    assert.ok(await store.renew("job", `run-${T0 + 1000}`, 5000, "r1"));
    await elapse(150);
    const [renewed, dead] = await store.runs("job", 10);
    assert.is(renewed.status, "running");
    assert.is(dead.status, "failed");
    assert.match(dead.error!, /stopped before it finished/);
  });

  test("queueManual() is taken by exactly one taker, and begin() reuses its record", async () => {
    const { store } = await setup();
    const queued = await store.queueManual("job", "manual-1", T0);
    assert.is(queued.status, "queued");
    const taken = await Promise.all([store.takeManual(), store.takeManual(), store.takeManual()]);
    assert.equal(taken.filter(Boolean), [{ name: "job", id: "manual-1", at: T0 }]);
    const started = await store.begin("job", {
      id: "manual-1",
      claimUpTo: null,
      lock: "force",
      leaseMs: 30_000,
      now: T0 + 5,
      record: { ...record(T0), trigger: "manual" },
    });
    assert.is(started.outcome, "running");
    const runs = await store.runs("job", 10);
    assert.is(runs.length, 1);
    assert.is(runs[0].status, "running");
    assert.is(runs[0].trigger, "manual");
    // The manual run holds the lock, so a tick with overlap "skip" is skipped meanwhile.
    assert.is((await begin(store, T0 + 1000)).outcome, "skipped");
  });

  test("subscribeManual() hears queued runs", async () => {
    const { store } = await setup();
    const heard: string[] = [];
    const unsubscribe = await store.subscribeManual((name) => heard.push(name));
    await store.queueManual("job", "m", T0);
    await waitFor(() => heard.length > 0, 1000, "the wake-up");
    await unsubscribe();
    assert.equal(heard, ["job"]);
  });

  test.run();
}
