import { suite } from "uvu";
import * as assert from "uvu/assert";
import { backends, cleanup, timedRuntime, waitFor } from "../helpers.ts";
import { type NewRun, RunStore } from "../../src/parallel/store.ts";
import { RUN_REFCODES } from "../../src/jobs/refcode.ts";

const newRefcode = () => RUN_REFCODES.make();
import { activeRunsKey, runKeys } from "../../src/parallel/keys.ts";

const T0 = Date.parse("2025-01-01T00:00:00Z");

for (const backend of backends()) {
  const test = suite(`RunStore on ${backend.name}`);
  test.after(cleanup);

  const setup = async () => {
    // Leases and the run's times are on the store's clock: a manual one on the embedded engine.
    const { rt, time } = await timedRuntime(backend, { start: T0 });
    const runs = new RunStore(rt.store, rt.config.keyPrefix);
    return { rt, runs, time };
  };
  const run = (over: Partial<NewRun> = {}): NewRun => ({
    taskId: "sum",
    workerCount: 2,
    chunks: [{ n: 1 }, { n: 2 }, { n: 3 }],
    leaseMs: 1000,
    maxAttempts: 2,
    ...over,
  });

  test("create() records a queued run and indexes it; get() shows it", async () => {
    const { rt, runs, time } = await setup();
    const since = time.now();
    const wall = Date.now();
    const refcode = await runs.create(run());
    assert.ok(RUN_REFCODES.test(refcode), refcode);
    const view = await runs.get(refcode);
    time.assertStamp(view!.created_at, since);
    assert.equal({ ...view, created_at: "" }, {
      refcode,
      task_id: "sum",
      worker_count: 2,
      status: "queued",
      progress: { done: 0, total: 3 },
      result: null,
      error: null,
      created_at: "",
      started_at: null,
      finished_at: null,
    });
    assert.equal((await runs.active("sum")).map((r) => r.refcode), [refcode]);
    // The index's score is the creating pod's clock (only pods compare it).
    const { createdMs } = (await runs.active("sum"))[0];
    assert.ok(createdMs >= wall && createdMs <= Date.now(), `${createdMs}`);
    const ttl = await rt.store.command(["TTL", runKeys(rt.config.keyPrefix, refcode).run]);
    assert.is(ttl, -1, "a live run never expires");
  });

  test("create() with no chunks ends the run at once with the empty result", async () => {
    const { runs } = await setup();
    const refcode = await runs.create(run({ chunks: [], emptyResult: { total: 0 } }));
    const view = await runs.get(refcode);
    assert.is(view!.status, "completed");
    assert.equal(view!.result, { total: 0 });
    assert.equal(await runs.active("sum"), []);
  });

  test("get() returns null for an unknown refcode", async () => {
    const { runs } = await setup();
    assert.is(await runs.get(newRefcode()), null);
  });

  test("claim() hands out chunks in order and never more than worker_count at once", async () => {
    const { runs, time } = await setup();
    const refcode = await runs.create(run());
    const since = time.now();
    const a = await runs.claim(refcode, "a");
    assert.equal(a, { kind: "chunk", index: 0, chunk: { n: 1 }, taskId: "sum" });
    assert.equal(await runs.claim(refcode, "b"), {
      kind: "chunk",
      index: 1,
      chunk: { n: 2 },
      taskId: "sum",
    });
    assert.equal(await runs.claim(refcode, "c"), { kind: "full" });
    const view = await runs.get(refcode);
    assert.is(view!.status, "in_progress");
    time.assertStamp(view!.started_at, since);
  });

  test("claim() is atomic: concurrent claimers never exceed worker_count", async () => {
    const { runs } = await setup();
    const refcode = await runs.create(run({ workerCount: 3, chunks: Array(20).fill(0) }));
    const claims = await Promise.all(
      Array.from({ length: 12 }, (_, i) => runs.claim(refcode, `t${i}`)),
    );
    assert.is(claims.filter((c) => c.kind === "chunk").length, 3);
    assert.is(claims.filter((c) => c.kind === "full").length, 9);
  });

  test("complete() records results; the last one grants the merge lease", async () => {
    const { runs, time } = await setup();
    const refcode = await runs.create(run({ workerCount: 3 }));
    for (const t of ["a", "b", "c"]) await runs.claim(refcode, t);
    assert.is((await runs.complete(refcode, 1, "b", 20)).outcome, "recorded");
    assert.is((await runs.complete(refcode, 0, "a", 10)).outcome, "recorded");
    assert.equal((await runs.get(refcode))!.progress, { done: 2, total: 3 });
    assert.is((await runs.complete(refcode, 2, "c", 30)).outcome, "last");
    assert.equal(await runs.results(refcode), [10, 20, 30]);
    assert.is(
      await runs.end(refcode, { slot: "merge", token: "x" }, {
        status: "completed",
        result: 1,
      }),
      false,
      "only the merge lease's holder ends the run",
    );
    const since = time.now();
    assert.ok(
      await runs.end(refcode, { slot: "merge", token: "c" }, { status: "completed", result: 60 }),
    );
    const view = await runs.get(refcode);
    assert.is(view!.status, "completed");
    assert.is(view!.result, 60);
    time.assertStamp(view!.finished_at, since);
  });

  test("complete() claims the next chunk for the given token in the same call", async () => {
    const { runs } = await setup();
    const refcode = await runs.create(run({ workerCount: 1 }));
    await runs.claim(refcode, "a");
    assert.equal(await runs.complete(refcode, 0, "a", 1, "b"), {
      outcome: "recorded",
      next: { kind: "chunk", index: 1, chunk: { n: 2 }, taskId: "sum" },
    });
    assert.equal(await runs.claim(refcode, "c"), { kind: "full" }, "b holds the one slot");
    assert.equal(await runs.complete(refcode, 1, "b", 2), { outcome: "recorded", next: undefined });
    assert.equal(await runs.complete(refcode, 2, "x", 3, "y"), { outcome: "dropped" });
  });

  test("complete() drops a result whose claim is not the token's", async () => {
    const { runs } = await setup();
    const refcode = await runs.create(run());
    await runs.claim(refcode, "a");
    assert.is((await runs.complete(refcode, 0, "intruder", 1)).outcome, "dropped");
    assert.is(
      (await runs.complete(refcode, 1, "a", 1)).outcome,
      "dropped",
      "chunk 1 was never claimed",
    );
    assert.equal((await runs.get(refcode))!.progress.done, 0);
  });

  test("an expired lease goes back to the queue and is claimed again", async () => {
    const { runs, time } = await setup();
    const refcode = await runs.create(run({ workerCount: 1 }));
    await runs.claim(refcode, "dead");
    // Just before and just after the lease's end (on Redis, with room for a slow machine).
    await time.elapse(time.clock ? 999 : 500);
    assert.equal(await runs.claim(refcode, "b"), { kind: "full" });
    await time.elapse(time.clock ? 2 : 600);
    assert.equal(await runs.claim(refcode, "b"), {
      kind: "chunk",
      index: 0,
      chunk: { n: 1 },
      taskId: "sum",
    });
    assert.is(
      (await runs.complete(refcode, 0, "dead", 1)).outcome,
      "dropped",
      "the dead claim lost it",
    );
    assert.is((await runs.complete(refcode, 0, "b", 1)).outcome, "recorded");
  });

  test("a chunk that loses its worker max_attempts times fails the run", async () => {
    const { runs, time } = await setup();
    const refcode = await runs.create(run({ workerCount: 1, maxAttempts: 2 }));
    await runs.claim(refcode, "a");
    await time.elapse(1001);
    assert.is((await runs.claim(refcode, "b")).kind, "chunk");
    await time.elapse(1001);
    assert.equal(await runs.claim(refcode, "c"), { kind: "gone", status: "failed" });
    const view = await runs.get(refcode);
    assert.is(view!.status, "failed");
    assert.match(view!.error!, /chunk 0 lost its worker 2 times/);
  });

  test("heartbeat() renews held leases and names the ones lost", async () => {
    const { runs, time } = await setup();
    const refcode = await runs.create(run({ workerCount: 1 }));
    await runs.claim(refcode, "a");
    // Past the first lease, within the renewed one (on Redis, with room for a slow machine).
    await time.elapse(time.clock ? 800 : 500);
    assert.equal(await runs.heartbeat(refcode, [{ slot: "0", token: "a" }]), {
      status: "in_progress",
      lost: [],
    });
    await time.elapse(time.clock ? 800 : 600);
    assert.equal(await runs.claim(refcode, "b"), { kind: "full" }, "renewed: not reclaimed");
    assert.equal(await runs.heartbeat(refcode, [{ slot: "1", token: "a" }]), {
      status: "in_progress",
      lost: ["1"],
    });
  });

  test("release() puts chunks back first in line without counting an attempt", async () => {
    const { rt, runs } = await setup();
    const refcode = await runs.create(run({ workerCount: 1, maxAttempts: 1 }));
    await runs.claim(refcode, "a");
    assert.is(await runs.release(refcode, [{ slot: "0", token: "a" }]), 1);
    assert.is(await runs.release(refcode, [{ slot: "0", token: "a" }]), 0);
    const again = await runs.claim(refcode, "b");
    assert.equal(again, { kind: "chunk", index: 0, chunk: { n: 1 }, taskId: "sum" });
    const attempts = await rt.store.command([
      "HGET",
      runKeys(rt.config.keyPrefix, refcode).attempts,
      "0",
    ]);
    assert.is(String(attempts), "1");
  });

  test("cancel() ends a live run, drops its work, and tells the workers", async () => {
    const { rt, runs } = await setup();
    const messages: string[] = [];
    const unsubscribe = await rt.store.subscribe(runs.channel, (m) => messages.push(m));
    const refcode = await runs.create(run());
    await runs.claim(refcode, "a");
    assert.is(await runs.cancel(refcode), "in_progress");
    const view = await runs.get(refcode);
    assert.is(view!.status, "cancelled");
    assert.ok(view!.finished_at);
    assert.is(
      (await runs.complete(refcode, 0, "a", 1)).outcome,
      "dropped",
      "a late result changes nothing",
    );
    assert.equal(await runs.claim(refcode, "b"), { kind: "gone", status: "cancelled" });
    assert.is(await runs.cancel(refcode), "cancelled", "a second cancel reports the end state");
    assert.is(await runs.cancel(newRefcode()), null);
    const keys = runKeys(rt.config.keyPrefix, refcode);
    assert.is(await rt.store.command(["EXISTS", keys.pending, keys.chunks, keys.leases]), 0);
    const ttl = Number(await rt.store.command(["TTL", keys.run]));
    assert.ok(ttl > 0 && ttl <= 24 * 3600, `ended runs expire (ttl ${ttl})`);
    await waitFor(() => messages.includes(`stop ${refcode}`), 2000, "stop message");
    assert.ok(messages.includes(`run sum ${refcode}`));
    await unsubscribe();
  });

  test("end() as failed records the error; later results are dropped", async () => {
    const { runs } = await setup();
    const refcode = await runs.create(run());
    await runs.claim(refcode, "a");
    await runs.claim(refcode, "b");
    assert.ok(
      await runs.end(refcode, { slot: "0", token: "a" }, { status: "failed", error: "boom" }),
    );
    assert.is((await runs.complete(refcode, 1, "b", 2)).outcome, "dropped");
    const view = await runs.get(refcode);
    assert.is(view!.status, "failed");
    assert.is(view!.error, "boom");
    assert.is(view!.result, null);
  });

  test("forget() drops a run from its task's index", async () => {
    const { rt, runs } = await setup();
    const refcode = await runs.create(run());
    await runs.forget("sum", refcode);
    assert.is(await rt.store.command(["ZCARD", activeRunsKey(rt.config.keyPrefix, "sum")]), 0);
  });

  test.run();
}
