import { test } from "uvu";
import * as assert from "uvu/assert";
import * as v from "valibot";
import { System } from "../../src/system.ts";
import { defineTask } from "../../src/tasks/define.ts";
import { enqueueTask, taskClient, toView } from "../../src/tasks/client.ts";
import {
  IdempotencyConflictError,
  TaskInputError,
  TaskNotFoundError,
  TaskStateError,
  UnknownTaskTypeError,
} from "../../src/tasks/errors.ts";
import { backends, claimAll, cleanup, testRuntime } from "../helpers.ts";

test.after(cleanup);

const report = defineTask({
  name: "report",
  input: v.object({ day: v.pipe(v.string(), v.isoDate()), lines: v.optional(v.number()) }),
  handler: () => null,
});

for (const backend of backends()) {
  const name = (s: string) => `[${backend.name}] ${s}`;
  const make = () =>
    testRuntime({ redis: backend.name === "redis", system: new System().add(report) });

  test(name("enqueueTask() takes a name or a definition and returns the refcode"), async () => {
    const rt = make();
    const byName = await enqueueTask(rt, "report", { day: "2026-01-01" });
    const byDef = await enqueueTask(rt, report, { day: "2026-01-02" });
    for (const r of [byName, byDef]) {
      assert.equal({ ...r, refcode: "" }, {
        refcode: "",
        type: "report",
        status: "queued",
        created: true,
      });
    }
    const view = await taskClient(rt).get(byDef.refcode);
    assert.is(view.status, "queued");
  });

  test(name("enqueue() rejects unknown types and bad input with typed errors"), async () => {
    const rt = make();
    const client = taskClient(rt);
    try {
      await client.enqueue("nope", {});
      assert.unreachable();
    } catch (err) {
      assert.instance(err, UnknownTaskTypeError);
    }
    try {
      await client.enqueue("report", { day: "yesterday" });
      assert.unreachable();
    } catch (err) {
      assert.instance(err, TaskInputError);
      assert.is((err as TaskInputError).issues[0].path, "day");
    }
  });

  test(
    name("an idempotency key ignores key order in the input; other input conflicts"),
    async () => {
      const rt = make();
      const client = taskClient(rt);
      const key = { idempotencyKey: "nightly-2026-01-01" };
      const a = await client.enqueue("report", { day: "2026-01-01", lines: 3 }, key);
      const b = await client.enqueue("report", { lines: 3, day: "2026-01-01" }, key);
      assert.equal([b.refcode, b.created], [a.refcode, false]);
      try {
        await client.enqueue("report", { day: "2026-01-02" }, key);
        assert.unreachable();
      } catch (err) {
        assert.instance(err, IdempotencyConflictError);
        assert.is((err as IdempotencyConflictError).refcode, a.refcode);
      }
    },
  );

  test(name("get(), cancel() and retry() throw TaskNotFoundError and TaskStateError"), async () => {
    const rt = make();
    const client = taskClient(rt);
    const missing = "t_" + "b".repeat(26);
    for (const op of [client.get, client.cancel, client.retry]) {
      try {
        await op.call(client, missing);
        assert.unreachable();
      } catch (err) {
        assert.instance(err, TaskNotFoundError);
      }
    }
    const { refcode } = await client.enqueue("report", { day: "2026-01-01" });
    try {
      await client.retry(refcode);
      assert.unreachable();
    } catch (err) {
      assert.instance(err, TaskStateError);
      assert.is((err as Error).message, `Cannot retry task "${refcode}": it is queued`);
    }
  });

  test(name("wait() returns at once for a terminal task"), async () => {
    const rt = make();
    const client = taskClient(rt);
    const { refcode } = await client.enqueue("report", { day: "2026-01-01" });
    await client.cancel(refcode);
    const started = Date.now();
    assert.is((await client.wait(refcode, 20_000)).status, "cancelled");
    assert.ok(Date.now() - started < 1000);
  });

  test(name("enqueue() with delayMs keeps the task queued until due"), async () => {
    const rt = make();
    const client = taskClient(rt);
    const { refcode } = await client.enqueue("report", { day: "2026-01-01" }, { delayMs: 60_000 });
    const tasks = await claimAll(client.broker, [["report", 5]], 1000, "w.1", "w");
    assert.equal(tasks, []);
    assert.is((await client.get(refcode)).status, "queued");
  });
}

test("toView() turns a record into API fields with ISO times", () => {
  const view = toView("t_x", {
    type: "report",
    status: "completed",
    progress: "1",
    result: '{"a":1}',
    attempts: "2",
    created_at: "0",
    updated_at: "1000",
  });
  assert.equal(view, {
    refcode: "t_x",
    type: "report",
    status: "completed",
    progress: 1,
    result: { a: 1 },
    error: null,
    attempts: 2,
    created_at: "1970-01-01T00:00:00.000Z",
    updated_at: "1970-01-01T00:00:01.000Z",
  });
});

test.run();
