/**
 * The claim loop of a worker serving several task types: a backlog drains at its type's
 * concurrency without waiting for the fallback poll, an idle or partly busy worker is woken by
 * notifications, and one type's flood or full slots never hold another type back.
 *
 * The fallback poll is set to ten minutes, so a worker that ever relies on it never finishes:
 * every assertion is a count or an order, and the only clock is the bound on the whole wait.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as v from "valibot";
import { System } from "../../src/system.ts";
import type { Runtime } from "../../src/runtime.ts";
import { defineTask, type TaskDefinition } from "../../src/tasks/define.ts";
import { taskClient } from "../../src/tasks/client.ts";
import { TaskWorker } from "../../src/tasks/worker.ts";
import { backends, cleanup, onCleanup, testRuntime, waitFor } from "../helpers.ts";

test.after(cleanup);

/** Never reached in a test: only notifications and freed slots may start a claim. */
const NO_POLL = 600_000;
/** Bound on any wait; a stalled worker fails the test here. */
const BOUND = 20_000;

/** A promise opened from outside (and at cleanup, so no handler outlives its test). */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  onCleanup(() => open());
  return { promise, open };
}

/**
 * A task type that counts its runs and the most of them at once, waiting on `before`; `shards`
 * as `defineTask` takes it (1 where a test asserts the order of one queue).
 */
function counted(
  name: string,
  concurrency: number,
  before?: () => Promise<unknown>,
  shards?: number,
) {
  const stats = { started: 0, done: 0, running: 0, most: 0, order: [] as string[] };
  const def = defineTask({
    name,
    input: v.object({ i: v.number() }),
    concurrency,
    attempts: 1,
    shards,
    handler: async ({ i }) => {
      stats.started++;
      stats.most = Math.max(stats.most, ++stats.running);
      stats.order.push(`${name}${i}`);
      await before?.();
      await Promise.resolve();
      stats.running--;
      stats.done++;
    },
  });
  return { def, stats };
}

for (const backend of backends()) {
  const name = (s: string) => `[${backend.name}] ${s}`;
  const make = (...defs: TaskDefinition[]) =>
    testRuntime({ redis: backend.name === "redis", system: new System().add(...defs) });
  const startWorker = async (rt: Runtime) => {
    const worker = new TaskWorker(rt, { pollMs: NO_POLL });
    await worker.start();
    onCleanup(() => worker.stop(Date.now() + 2000));
    return worker;
  };
  const enqueue = async (rt: Runtime, type: string, count: number, from = 0) => {
    const client = taskClient(rt);
    for (let i = from; i < from + count; i++) await client.enqueue(type, { i });
  };

  test(name("a backlog on one of two types drains at that type's concurrency"), async () => {
    const a = counted("a", 2), b = counted("b", 5);
    const rt = make(a.def, b.def);
    await enqueue(rt, "a", 40);
    await startWorker(rt);
    await waitFor(() => a.stats.done === 40, BOUND, `40 a done (got ${a.stats.done})`);
    assert.is(a.stats.most, 2);
    assert.is(b.stats.started, 0);
  });

  test(name("backlogs on both types, of different lengths, both drain"), async () => {
    const a = counted("a", 3), b = counted("b", 2);
    const rt = make(a.def, b.def);
    for (let i = 0; i < 10; i++) {
      await enqueue(rt, "a", 1, i);
      await enqueue(rt, "b", 4, 4 * i);
    }
    await startWorker(rt);
    await waitFor(
      () => a.stats.done === 10 && b.stats.done === 40,
      BOUND,
      `10 a and 40 b done (got ${a.stats.done}, ${b.stats.done})`,
    );
    assert.ok(a.stats.most <= 3, `a ran ${a.stats.most} at once`);
    assert.is(b.stats.most, 2);
  });

  test(name("bursts on either type, while the worker idles or runs, all run"), async () => {
    const a = counted("a", 2), b = counted("b", 3);
    const rt = make(a.def, b.def);
    await startWorker(rt);
    await enqueue(rt, "a", 25);
    await waitFor(() => a.stats.done === 25, BOUND, `burst 1 (got ${a.stats.done} a)`);
    await enqueue(rt, "b", 25);
    await waitFor(() => b.stats.done === 25, BOUND, `burst 2 (got ${b.stats.done} b)`);
    // Both at once, without waiting for the enqueues to finish.
    await Promise.all([enqueue(rt, "a", 30, 25), enqueue(rt, "b", 30, 25)]);
    await waitFor(
      () => a.stats.done === 55 && b.stats.done === 55,
      BOUND,
      `burst 3 (got ${a.stats.done} a, ${b.stats.done} b)`,
    );
    assert.equal([a.stats.most <= 2, b.stats.most <= 3], [true, true]);
  });

  test(name("a type at its limit beside an idle one: both proceed"), async () => {
    const held = gate();
    // One shard: the order asserted is that of one queue (there is none across shards).
    const a = counted("a", 1, () => held.promise, 1), b = counted("b", 3);
    const rt = make(a.def, b.def);
    await startWorker(rt);
    await enqueue(rt, "a", 5);
    await waitFor(() => a.stats.started === 1, BOUND, "the first a to start");
    // `a` is at its limit with four waiting; `b` work wakes the worker all the same.
    await enqueue(rt, "b", 10);
    await waitFor(() => b.stats.done === 10, BOUND, `10 b done (got ${b.stats.done})`);
    assert.is(a.stats.started, 1);
    // The freed slot of `a` starts the next `a` at once, and so on down its queue.
    held.open();
    await waitFor(() => a.stats.done === 5, BOUND, `5 a done (got ${a.stats.done})`);
    assert.is(a.stats.most, 1);
    assert.equal(a.stats.order, ["a0", "a1", "a2", "a3", "a4"]);
  });

  test(name("a flood of one type does not starve another"), async () => {
    const bStarted = gate();
    const b = counted("b", 2);
    // Every `a` waits until all of `b` started: if `b` waited for `a`'s backlog, nothing ends.
    const a = counted("a", 2, () => bStarted.promise);
    const rt = make(a.def, b.def);
    await enqueue(rt, "a", 100);
    await startWorker(rt);
    await waitFor(() => a.stats.started === 2, BOUND, "a at its limit");
    await enqueue(rt, "b", 6);
    await waitFor(() => b.stats.done === 6, BOUND, `6 b done (got ${b.stats.done})`);
    assert.is(a.stats.done, 0);
    bStarted.open();
    await waitFor(() => a.stats.done === 100, BOUND, `100 a done (got ${a.stats.done})`);
    assert.is(a.stats.most, 2);
  });

  test(name("a delayed task wakes an idle worker when it is due"), async () => {
    const a = counted("a", 2);
    const rt = make(a.def);
    await startWorker(rt);
    const client = taskClient(rt);
    // Idle, with nothing scheduled: only a notification tells it when the next task is due.
    await client.enqueue("a", { i: 0 }, { delayMs: 200 });
    await waitFor(() => a.stats.done === 1, BOUND, "the delayed task");
    // A later one behind an earlier one, and an earlier one behind a later one.
    await client.enqueue("a", { i: 1 }, { delayMs: 400 });
    await client.enqueue("a", { i: 2 }, { delayMs: 100 });
    await waitFor(() => a.stats.done === 3, BOUND, `3 done (got ${a.stats.done})`);
    assert.equal(a.stats.order, ["a0", "a2", "a1"]);
  });

  test(name("a task claimed ahead that waits too long goes back, unattempted"), async () => {
    const held = gate();
    const started: number[] = [];
    const def = defineTask({
      name: "short",
      input: v.object({ i: v.number(), hold: v.optional(v.boolean()) }),
      concurrency: 1,
      attempts: 1,
      // One shard: which task runs first and which are claimed behind it is the queue's order.
      shards: 1,
      handler: async ({ i, hold }) => {
        started.push(i);
        if (hold) await held.promise;
      },
    });
    const rt = make(def);
    await startWorker(rt);
    const client = taskClient(rt);
    // Short runs first: the worker learns this type's runs are short and claims ahead.
    for (let i = 0; i < 3; i++) await client.enqueue("short", { i });
    await waitFor(() => started.length === 3, BOUND, "the short runs");
    const refs: string[] = [];
    for (let i = 3; i < 8; i++) {
      refs.push((await client.enqueue("short", { i, hold: true })).refcode);
    }
    // The first runs and blocks; whatever was claimed behind it is handed back, unattempted,
    // and nothing more is claimed ahead while that run lasts.
    await waitFor(
      async () => {
        const views = await Promise.all(refs.map((r) => client.get(r)));
        return views[0].status === "in_progress" &&
          views.slice(1).every((t) => t.status === "queued" && t.attempts === 0);
      },
      BOUND,
      "one running, the others queued",
    );
    assert.equal(started, [0, 1, 2, 3]);
    held.open();
    for (const r of refs) assert.is((await client.wait(r, 10_000)).attempts, 1);
    assert.equal(started, [0, 1, 2, 3, 4, 5, 6, 7]);
  });
}

test.run();
