import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  type EnqueueEntry,
  LEASE_EXPIRED_ERROR,
  type Outcome,
  TaskBroker,
} from "../../src/tasks/broker.ts";
import { shardIndex, taskKeys } from "../../src/tasks/keys.ts";
import { TASK_REFCODES } from "../../src/jobs/refcode.ts";
import { backends, cleanup, timedRuntime } from "../helpers.ts";

// Every task in shard 0: the claims of one shard see them all, in the order they were queued.
const newRefcode = () => TASK_REFCODES.make((r) => shardIndex(r) === 0);

test.after(cleanup);

const entry = (over: Partial<EnqueueEntry> = {}): EnqueueEntry => ({
  refcode: newRefcode(),
  type: "job",
  input: '{"n":1}',
  maxAttempts: 3,
  ttlMs: 60_000,
  failedTtlMs: 120_000,
  delayMs: 0,
  ...over,
});

/** Finishes one claimed task of an entry with an outcome. */
const finishOne = (broker: TaskBroker, e: EnqueueEntry, token: string, outcome: Outcome) =>
  broker.finish([{ refcode: e.refcode, type: e.type, token, outcome }]);

for (const backend of backends()) {
  const name = (s: string) => `[${backend.name}] ${s}`;
  // The embedded store runs on a manual clock: leases, retries and delays pass without waiting.
  const make = async () => {
    const { rt, time } = await timedRuntime(backend);
    const keys = taskKeys(rt.config.keyPrefix);
    return { rt, keys, broker: new TaskBroker(rt.store, keys), elapse: time.elapse };
  };

  test(
    name("enqueue() stores the record and queues it; claim() starts it with attempt 1"),
    async () => {
      const { broker } = await make();
      const e = entry();
      assert.equal(await broker.enqueue(e), { outcome: "created", refcode: e.refcode });
      const queued = await broker.get(e.refcode);
      assert.is(queued?.status, "queued");
      assert.is(queued?.attempts, "0");
      const { tasks, nextDueMs } = await broker.claim(0, [["job", 5]], 5000, "w.1", "w");
      assert.is(nextDueMs, null);
      assert.is(tasks.length, 1);
      assert.equal(
        { ...tasks[0], readyAt: 0 },
        {
          refcode: e.refcode,
          type: "job",
          input: '{"n":1}',
          attempt: 1,
          maxAttempts: 3,
          readyAt: 0,
          token: "w.1/1",
        },
      );
      const running = await broker.get(e.refcode);
      assert.is(running?.status, "in_progress");
      assert.is(running?.lease, "w.1/1");
      assert.equal((await broker.claim(0, [["job", 5]], 5000, "w.2", "w")).tasks, []);
    },
  );

  test(name("claim() honours the asked count per type and serves FIFO"), async () => {
    const { broker } = await make();
    const refs = [];
    for (let i = 0; i < 5; i++) refs.push((await broker.enqueue(entry())).refcode);
    await broker.enqueue(entry({ type: "other" }));
    const first = await broker.claim(0, [["job", 2], ["other", 0]], 5000, "w.1", "w");
    assert.equal(first.tasks.map((t) => t.refcode), refs.slice(0, 2));
    const second = await broker.claim(0, [["job", 10]], 5000, "w.2", "w");
    assert.equal(second.tasks.map((t) => t.refcode), refs.slice(2));
  });

  test(name("finish() completes a run; a second finish with the same token is lost"), async () => {
    const { broker, keys, rt } = await make();
    const e = entry();
    await broker.enqueue(e);
    const [task] = (await broker.claim(0, [["job", 1]], 5000, "w.1", "w")).tasks;
    const outcome = { kind: "ok" as const, result: '{"ok":true}' };
    assert.equal(
      await finishOne(broker, e, task.token, outcome),
      [
        "completed",
      ],
    );
    const done = await broker.get(e.refcode);
    assert.is(done?.status, "completed");
    assert.is(done?.result, '{"ok":true}');
    assert.is(done?.progress, "1");
    assert.is(done?.lease ?? "", "");
    const ttl = Number(await rt.store.command(["PTTL", keys.record(e.refcode)]));
    assert.ok(ttl > 50_000 && ttl <= 60_000, `ttl ${ttl}`);
    assert.equal(
      await finishOne(broker, e, task.token, outcome),
      [
        "lost",
      ],
    );
    assert.is(Number(await rt.store.command(["ZCARD", keys.shards[0].active])), 0);
  });

  test(name("a cancel asked while running wins over a late completion"), async () => {
    const { broker } = await make();
    const e = entry();
    await broker.enqueue(e);
    const [task] = (await broker.claim(0, [["job", 1]], 5000, "w.1", "w")).tasks;
    const cancel = await broker.cancel(e.refcode);
    assert.is(cancel.outcome, "cancelling");
    assert.is(cancel.record?.status, "in_progress");
    assert.equal(await broker.renew([[e.refcode, task.token]], 5000), {
      lost: [],
      cancel: [e.refcode],
    });
    const outcome = { kind: "ok" as const, result: "1" };
    assert.equal(
      await finishOne(broker, e, task.token, outcome),
      [
        "cancelled",
      ],
    );
    const after = await broker.get(e.refcode);
    assert.is(after?.status, "cancelled");
    assert.is(after?.result, undefined);
    assert.is((await broker.cancel(e.refcode)).outcome, "terminal");
  });

  test(name("cancel() of a queued task ends it at once; claim() skips it"), async () => {
    const { broker } = await make();
    const a = entry(), b = entry();
    await broker.enqueue(a);
    await broker.enqueue(b);
    const change = await broker.cancel(a.refcode);
    assert.is(change.outcome, "cancelled");
    assert.is(change.record?.status, "cancelled");
    const { tasks } = await broker.claim(0, [["job", 5]], 5000, "w.1", "w");
    assert.equal(tasks.map((t) => t.refcode), [b.refcode]);
    assert.is((await broker.cancel(newRefcode())).outcome, "missing");
  });

  test(name("finish(retry) schedules the next attempt; the last attempt ends failed"), async () => {
    const { broker, elapse } = await make();
    const e = entry({ maxAttempts: 2 });
    await broker.enqueue(e);
    let [task] = (await broker.claim(0, [["job", 1]], 5000, "w.1", "w")).tasks;
    const retry = { kind: "retry" as const, error: "boom 1", delayMs: 150 };
    assert.equal(
      await finishOne(broker, e, task.token, retry),
      ["queued"],
    );
    const waiting = await broker.get(e.refcode);
    assert.is(waiting?.status, "queued");
    assert.is(waiting?.error, "boom 1");
    const early = await broker.claim(0, [["job", 1]], 5000, "w.2", "w");
    assert.equal(early.tasks, []);
    assert.ok(early.nextDueMs !== null && early.nextDueMs <= 150, `next ${early.nextDueMs}`);
    await elapse(200);
    [task] = (await broker.claim(0, [["job", 1]], 5000, "w.3", "w")).tasks;
    assert.is(task.attempt, 2);
    const again = { kind: "retry" as const, error: "boom 2", delayMs: 0 };
    assert.equal(
      await finishOne(broker, e, task.token, again),
      ["failed"],
    );
    const failed = await broker.get(e.refcode);
    assert.is(failed?.status, "failed");
    assert.is(failed?.error, "boom 2");
    assert.equal(
      (await broker.list("failed", 10, { types: ["job"] })).map((r) => r.refcode),
      [e.refcode],
    );
  });

  test(
    name("retry() requeues a failed task with attempts reset; other statuses refuse"),
    async () => {
      const { broker, keys, rt } = await make();
      const e = entry({ maxAttempts: 1 });
      await broker.enqueue(e);
      assert.is((await broker.retry(e.refcode)).outcome, "state");
      const [task] = (await broker.claim(0, [["job", 1]], 5000, "w.1", "w")).tasks;
      await finishOne(broker, e, task.token, { kind: "fail", error: "no" });
      const change = await broker.retry(e.refcode);
      assert.is(change.outcome, "queued");
      assert.is(change.record?.attempts, "0");
      assert.is(change.record?.error, undefined);
      assert.is(Number(await rt.store.command(["PTTL", keys.record(e.refcode)])), -1);
      assert.equal(await broker.list("failed", 10, { types: ["job"] }), []);
      const [again] = (await broker.claim(0, [["job", 1]], 5000, "w.2", "w")).tasks;
      assert.is(again.attempt, 1);
      assert.is((await broker.retry(newRefcode())).outcome, "missing");
    },
  );

  test(
    name("finish(release) hands the task back to the front without using an attempt"),
    async () => {
      const { broker } = await make();
      const a = entry(), b = entry();
      await broker.enqueue(a);
      await broker.enqueue(b);
      const [task] = (await broker.claim(0, [["job", 1]], 5000, "w.1", "w")).tasks;
      assert.equal(
        await finishOne(broker, a, task.token, { kind: "release" }),
        ["queued"],
      );
      const { tasks } = await broker.claim(0, [["job", 2]], 5000, "w.2", "w");
      assert.equal(tasks.map((t) => [t.refcode, t.attempt]), [[a.refcode, 1], [b.refcode, 1]]);
    },
  );

  test(
    name("reclaim() takes back expired leases (attempt + 1), fails the last attempt"),
    async () => {
      const { broker, elapse } = await make();
      const a = entry(), b = entry({ maxAttempts: 1 });
      await broker.enqueue(a);
      await broker.enqueue(b);
      const claimed = (await broker.claim(0, [["job", 2]], 100, "w.1", "w")).tasks;
      assert.equal(await broker.reclaim(["job", "other"]), []);
      await elapse(150);
      const back = await broker.reclaim(["job", "other"]);
      assert.equal(back.sort(), [["job", "failed"], ["job", "queued"]]);
      assert.is((await broker.get(b.refcode))?.error, LEASE_EXPIRED_ERROR);
      const outcome = { kind: "ok" as const, result: "1" };
      assert.equal(
        await finishOne(broker, a, claimed[0].token, outcome),
        ["lost"],
      );
      const [again] = (await broker.claim(0, [["job", 1]], 5000, "w2.1", "w2")).tasks;
      assert.is(again.refcode, a.refcode);
      assert.is(again.attempt, 2);
    },
  );

  test(name("renew() extends held leases and reports lost ones"), async () => {
    const { broker, elapse } = await make();
    const e = entry();
    await broker.enqueue(e);
    const [task] = (await broker.claim(0, [["job", 1]], 150, "w.1", "w")).tasks;
    for (let i = 0; i < 3; i++) {
      await elapse(80);
      assert.equal(await broker.renew([[e.refcode, task.token]], 150), { lost: [], cancel: [] });
    }
    assert.equal(await broker.reclaim(["job", "other"]), []);
    assert.equal(await broker.renew([[e.refcode, "other/1"]], 150), {
      lost: [e.refcode],
      cancel: [],
    });
  });

  test(name("enqueue() with an idempotency key returns the first task or a conflict"), async () => {
    const { broker } = await make();
    const idem = { keyHash: "k1", fingerprint: "f1", ttlMs: 60_000 };
    const first = entry({ idempotency: idem });
    assert.is((await broker.enqueue(first)).outcome, "created");
    assert.equal(await broker.enqueue(entry({ idempotency: idem })), {
      outcome: "existing",
      refcode: first.refcode,
    });
    assert.equal(await broker.enqueue(entry({ idempotency: { ...idem, fingerprint: "f2" } })), {
      outcome: "conflict",
      refcode: first.refcode,
    });
  });

  test(name("enqueue() with a delay schedules the task; depth() counts it"), async () => {
    const { broker, elapse } = await make();
    const e = entry({ delayMs: 120 });
    await broker.enqueue(e);
    await broker.enqueue(entry());
    assert.equal([...await broker.depth(["job", "none"])], [["job", 2], ["none", 0]]);
    const now = await broker.claim(0, [["job", 5]], 5000, "w.1", "w");
    assert.is(now.tasks.length, 1);
    assert.ok(now.nextDueMs !== null && now.nextDueMs <= 120);
    await elapse(150);
    const later = await broker.claim(0, [["job", 5]], 5000, "w.2", "w");
    assert.equal(later.tasks.map((t) => t.refcode), [e.refcode]);
  });

  test(name("progress() writes only while the run holds the lease"), async () => {
    const { broker } = await make();
    const e = entry();
    await broker.enqueue(e);
    const [task] = (await broker.claim(0, [["job", 1]], 5000, "w.1", "w")).tasks;
    assert.is(await broker.progress(e.refcode, task.token, 0.25), true);
    assert.is((await broker.get(e.refcode))?.progress, "0.25");
    assert.is(await broker.progress(e.refcode, "w.0/1", 0.5), false);
    assert.is((await broker.get(e.refcode))?.progress, "0.25");
  });

  test(name("list() merges the shards' indexes, newest first, with a type filter"), async () => {
    const { broker, elapse } = await make();
    const done: string[] = [];
    // Tasks in every shard, finished one after another.
    for (let i = 0; i < 12; i++) {
      const e = entry({ refcode: TASK_REFCODES.make(), type: i % 3 ? "a" : "b" });
      await broker.enqueue(e);
      const [task] = (await broker.claim(shardIndex(e.refcode), [[e.type, 1]], 5000, "w.1", "w"))
        .tasks;
      await finishOne(broker, e, task.token, { kind: "ok", result: "1" });
      done.push(e.refcode);
      await elapse(3);
    }
    const newest = [...done].reverse();
    const types = ["a", "b"];
    const completed = async (limit: number, type?: string) =>
      (await broker.list("completed", limit, { type, types })).map((r) => r.refcode);
    assert.equal(await completed(20), newest);
    assert.equal(await completed(5), newest.slice(0, 5));
    assert.equal(await completed(20, "b"), newest.filter((_, i) => (11 - i) % 3 === 0));
  });

  test(name("list() of queued and running tasks reads the queues, newest first"), async () => {
    const { broker, elapse } = await make();
    const refs: string[] = [];
    for (const type of ["a", "b", "a", "a"]) {
      const e = entry({ type });
      refs.push(e.refcode);
      await broker.enqueue(e);
      await elapse(3);
    }
    const types = ["a", "b"];
    const queued = async (type?: string, limit = 10) =>
      (await broker.list("queued", limit, { type, types })).map((r) => r.refcode);
    assert.equal(await queued(), [...refs].reverse());
    assert.equal(await queued("a"), [refs[3], refs[2], refs[0]]);
    assert.equal(await queued(undefined, 1), [refs[3]]);
    await broker.cancel(refs[2]);
    assert.equal(await queued("a"), [refs[3], refs[0]]);
    await broker.claim(0, [["a", 1]], 5000, "w.1", "w");
    await elapse(3);
    await broker.claim(0, [["b", 1]], 5000, "w.2", "w");
    const running = await broker.list("in_progress", 10, { types });
    assert.equal(running.map((r) => r.refcode), [refs[1], refs[0]]);
    assert.equal(
      (await broker.list("in_progress", 10, { type: "a", types })).map((r) => r.refcode),
      [refs[0]],
    );
    assert.equal(await queued(), [refs[3]]);
  });

  test(name("list() of a terminal status drops records that expired from its index"), async () => {
    const { broker, elapse, keys, rt } = await make();
    const refs: string[] = [];
    for (let i = 0; i < 3; i++) {
      const e = entry();
      refs.push(e.refcode);
      await broker.enqueue(e);
      await broker.cancel(e.refcode);
      await elapse(3);
    }
    const cancelled = async (limit = 10) =>
      (await broker.list("cancelled", limit, { types: ["job"] })).map((r) => r.refcode);
    assert.equal(await cancelled(), [...refs].reverse());
    assert.equal(await cancelled(1), [refs[2]]);
    await rt.store.command(["DEL", keys.record(refs[1])]);
    assert.equal(await cancelled(), [refs[2], refs[0]]);
    assert.is(Number(await rt.store.command(["ZCARD", keys.shards[0].status("cancelled")])), 2);
  });
}

test.run();
