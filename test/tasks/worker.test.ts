import { test } from "uvu";
import * as assert from "uvu/assert";
import * as v from "valibot";
import { System } from "../../src/system.ts";
import type { Runtime } from "../../src/runtime.ts";
import { defineTask, type TaskDefinition } from "../../src/tasks/define.ts";
import { taskClient } from "../../src/tasks/client.ts";
import { NonRetryableError } from "../../src/tasks/errors.ts";
import { TaskWorker, type TaskWorkerOptions } from "../../src/tasks/worker.ts";
import { backends, cleanup, onCleanup, testRuntime, waitFor } from "../helpers.ts";

test.after(cleanup);

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });

/** A handler's work that lasts until its run is aborted: rejects with the abort's reason. */
const untilAborted = (signal: AbortSignal) =>
  new Promise<never>((_, reject) =>
    signal.addEventListener("abort", () => reject(signal.reason), { once: true })
  );

const Input = v.object({ ms: v.optional(v.number(), 0), tag: v.optional(v.string()) });

for (const backend of backends()) {
  const name = (s: string) => `[${backend.name}] ${s}`;
  const make = (...defs: TaskDefinition[]) =>
    testRuntime({ redis: backend.name === "redis", system: new System().add(...defs) });
  const startWorker = async (rt: Runtime, options: TaskWorkerOptions = {}) => {
    const worker = new TaskWorker(rt, options);
    await worker.start();
    let stopped = false;
    onCleanup(() => stopped ? undefined : worker.stop(Date.now() + 2000));
    return {
      worker,
      stop: (ms = 2000) => {
        stopped = true;
        return worker.stop(Date.now() + ms);
      },
    };
  };

  test(name("runs a task with its input and context; the result is stored"), async () => {
    const seen: unknown[] = [];
    const def = defineTask({
      name: "echo",
      input: Input,
      handler: async (input, ctx) => {
        seen.push({ input, attempt: ctx.attempt, refcode: ctx.refcode });
        ctx.progress(0.5);
        await sleep(input.ms);
        return { tag: input.tag };
      },
    });
    const rt = make(def);
    await startWorker(rt);
    const client = taskClient(rt);
    const { refcode } = await client.enqueue("echo", { tag: "x", ms: 150 });
    await waitFor(async () => (await client.get(refcode)).progress === 0.5, 5000, "progress");
    const view = await client.wait(refcode, 5000);
    assert.is(view.status, "completed");
    assert.equal(view.result, { tag: "x" });
    assert.is(view.attempts, 1);
    assert.is(view.progress, 1);
    assert.equal(seen, [{ input: { tag: "x", ms: 150 }, attempt: 1, refcode }]);
  });

  test(name("a notification wakes an idle worker (the fallback poll is a minute)"), async () => {
    const def = defineTask({ name: "noop", input: v.unknown(), handler: () => "ok" });
    const rt = make(def);
    const { worker } = await startWorker(rt, { pollMs: 60_000 });
    const client = taskClient(rt);
    await worker.subscribed();
    for (let i = 0; i < 3; i++) {
      const { refcode } = await client.enqueue("noop", {});
      assert.is((await client.wait(refcode, 5000)).status, "completed");
    }
  });

  test(
    name("a failing task is retried with backoff, then failed with the last error"),
    async () => {
      let runs = 0;
      const def = defineTask({
        name: "flaky",
        input: v.unknown(),
        attempts: 3,
        backoff: { delayMs: 30 },
        handler: (_input, ctx) => {
          runs++;
          throw new Error(`boom ${ctx.attempt}`);
        },
      });
      const rt = make(def);
      await startWorker(rt, { pollMs: 60_000 });
      const client = taskClient(rt);
      const { refcode } = await client.enqueue("flaky", {});
      const view = await client.wait(refcode, 10_000);
      assert.is(view.status, "failed");
      assert.is(view.error, "boom 3");
      assert.is(view.attempts, 3);
      assert.is(runs, 3);
    },
  );

  test(name("NonRetryableError fails the task at its first attempt"), async () => {
    let runs = 0;
    const def = defineTask({
      name: "fatal",
      input: v.unknown(),
      handler: () => {
        runs++;
        throw new NonRetryableError("cannot ever work");
      },
    });
    const rt = make(def);
    await startWorker(rt);
    const client = taskClient(rt);
    const { refcode } = await client.enqueue("fatal", {});
    const view = await client.wait(refcode, 5000);
    assert.equal([view.status, view.error, view.attempts, runs], [
      "failed",
      "cannot ever work",
      1,
      1,
    ]);
  });

  test(name("a run past timeoutMs gets a TimeoutError signal and is retried"), async () => {
    const reasons: string[] = [];
    const def = defineTask({
      name: "slow",
      input: v.unknown(),
      attempts: 2,
      timeoutMs: 100,
      backoff: { delayMs: 10 },
      handler: async (_input, ctx) => {
        try {
          await sleep(ctx.attempt === 1 ? 5000 : 10, ctx.signal);
        } catch (err) {
          reasons.push((err as DOMException).name);
          throw err;
        }
        return "second time lucky";
      },
    });
    const rt = make(def);
    await startWorker(rt);
    const client = taskClient(rt);
    const { refcode } = await client.enqueue("slow", {});
    const view = await client.wait(refcode, 10_000);
    assert.equal([view.status, view.result, view.attempts], ["completed", "second time lucky", 2]);
    assert.equal(reasons, ["TimeoutError"]);
  });

  test(
    name("cancelling a running task fires its signal; it ends cancelled, never retried"),
    async () => {
      let runs = 0;
      let aborted: string | undefined;
      const def = defineTask({
        name: "long",
        input: v.unknown(),
        handler: async (_input, ctx) => {
          runs++;
          try {
            await untilAborted(ctx.signal);
          } catch (err) {
            aborted = (err as DOMException).message;
            throw err;
          }
        },
      });
      const rt = make(def);
      const { worker } = await startWorker(rt);
      const client = taskClient(rt);
      const { refcode } = await client.enqueue("long", {});
      await waitFor(async () => (await client.get(refcode)).status === "in_progress", 5000);
      const asked = Date.now();
      const answer = await client.cancel(refcode);
      assert.ok(["in_progress", "cancelled"].includes(answer.status));
      const view = await client.wait(refcode, 5000);
      assert.is(view.status, "cancelled");
      assert.ok(Date.now() - asked < 1000, `cancelled after ${Date.now() - asked} ms`);
      assert.is(aborted, "Task cancelled");
      await worker.idle();
      assert.is(runs, 1);
      assert.is((await client.get(refcode)).status, "cancelled");
    },
  );

  test(
    name("a handler ignoring cancel is closed cancelled; its late result is dropped"),
    async () => {
      let finished = false;
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const def = defineTask({
        name: "stubborn",
        input: v.unknown(),
        handler: async () => {
          await released;
          finished = true;
          return "too late";
        },
      });
      const rt = make(def);
      const { worker } = await startWorker(rt);
      const client = taskClient(rt);
      const { refcode } = await client.enqueue("stubborn", {});
      await waitFor(async () => (await client.get(refcode)).status === "in_progress", 5000);
      const asked = Date.now();
      await client.cancel(refcode);
      const view = await client.wait(refcode, 5000);
      assert.is(view.status, "cancelled");
      assert.ok(Date.now() - asked < 1000, `cancelled after ${Date.now() - asked} ms`);
      // The run was closed while its handler still runs: the handler ignored the cancel.
      await worker.idle();
      assert.is(worker.running, 1);
      release();
      await waitFor(() => worker.running === 0, 5000, "the handler to return");
      assert.ok(finished);
      await worker.idle();
      const after = await client.get(refcode);
      assert.equal([after.status, after.result], ["cancelled", null]);
    },
  );

  test(name("a queued task that is cancelled never starts"), async () => {
    let runs = 0;
    const def = defineTask({ name: "never", input: v.unknown(), handler: () => runs++ });
    const rt = make(def);
    const client = taskClient(rt);
    const { refcode } = await client.enqueue("never", {});
    assert.is((await client.cancel(refcode)).status, "cancelled");
    const other = await client.enqueue("never", {});
    await startWorker(rt);
    assert.is((await client.wait(other.refcode, 5000)).status, "completed");
    assert.is(runs, 1);
    assert.is((await client.get(refcode)).status, "cancelled");
  });

  test(name("a type's concurrency bounds its runs in one worker"), async () => {
    let now = 0, most = 0;
    // Each run holds its slot until the test lets it go, oldest first: the gates not yet
    // opened are the runs going on.
    const gates: (() => void)[] = [];
    const def = defineTask({
      name: "bounded",
      input: v.unknown(),
      concurrency: 3,
      handler: async () => {
        most = Math.max(most, ++now);
        await new Promise<void>((resolve) => gates.push(resolve));
        now--;
      },
    });
    const rt = make(def);
    await startWorker(rt);
    const client = taskClient(rt);
    const refs = [];
    for (let i = 0; i < 12; i++) refs.push((await client.enqueue("bounded", {})).refcode);
    // Every slot fills while tasks wait, and no run starts beyond them.
    for (let left = 12; left > 0; left--) {
      const full = Math.min(3, left);
      await waitFor(() => gates.length === full, 5000, `${full} runs at once`);
      gates.shift()!();
    }
    for (const r of refs) assert.is((await client.wait(r, 10_000)).status, "completed");
    assert.is(most, 3);
  });

  test(
    name("stop() lets short runs finish and hands long ones back for another worker"),
    async () => {
      const def = defineTask({
        name: "mixed",
        input: Input,
        handler: async (input, ctx) => {
          await sleep(input.ms, ctx.signal);
          return input.ms;
        },
      });
      const rt = make(def);
      const first = await startWorker(rt);
      const client = taskClient(rt);
      const short = await client.enqueue("mixed", { ms: 100 });
      const long = await client.enqueue("mixed", { ms: 3000 });
      await waitFor(async () => (await client.get(long.refcode)).status === "in_progress", 5000);
      await first.stop(1500);
      assert.is((await client.get(short.refcode)).status, "completed");
      const handed = await client.get(long.refcode);
      assert.equal([handed.status, handed.attempts], ["queued", 0]);
      await startWorker(rt);
      const view = await client.wait(long.refcode, 10_000);
      assert.equal([view.status, view.attempts, view.result], ["completed", 1, 3000]);
    },
  );

  test(name("stored input that no longer fits the schema fails without retries"), async () => {
    let runs = 0;
    const def = defineTask({
      name: "strict",
      input: v.object({ n: v.number() }),
      handler: () => runs++,
    });
    const rt = make(def);
    const client = taskClient(rt);
    const { refcode } = await client.broker.enqueue({
      refcode: "t_" + "a".repeat(26),
      type: "strict",
      input: '{"n":"one"}',
      maxAttempts: 3,
      ttlMs: 60_000,
      failedTtlMs: 60_000,
      delayMs: 0,
    });
    await startWorker(rt);
    const view = await client.wait(refcode, 5000);
    assert.is(view.status, "failed");
    assert.match(view.error ?? "", /no longer fits/);
    assert.is(runs, 0);
  });
}

test.run();
