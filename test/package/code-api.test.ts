/**
 * What code can start, as the HTTP API can: tasks enqueued typed by their definition (from a
 * handler, a consumer, a schedule action), a parallel run, a schedule run now. The
 * `@ts-expect-error` lines are checked by `deno check`: each must stay a type error.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as v from "valibot";
import {
  defineParallelTask,
  defineSchedule,
  defineTask,
  enqueueTask,
  HttpProblem,
  runScheduleNow,
  startParallelRun,
  System,
  taskClient,
  UnknownScheduleError,
} from "../../mod.ts";
import { RUN_REFCODES } from "../../src/jobs/refcode.ts";
import { runTask } from "../../src/testing.ts";
import { cleanup, testRuntime } from "../helpers.ts";

test.after(cleanup);

const report = defineTask({
  name: "report",
  input: v.object({ day: v.string() }),
  handler: ({ day }) => ({ day }),
});

const nightly = defineTask({
  name: "nightly",
  input: v.object({}),
  handler: async (_input, ctx) => {
    const { refcode } = await ctx.enqueue(report, { day: "2025-01-01" });
    // @ts-expect-error: the input is typed by the definition
    if (false as boolean) await ctx.enqueue(report, { day: 1 });
    return { refcode };
  },
});

const squares = defineParallelTask({
  name: "squares",
  input: v.object({ n: v.pipe(v.number(), v.integer(), v.minValue(0)) }),
  worker: new URL("../parallel/_worker.ts", import.meta.url),
  split: ({ n }) => Array.from({ length: n }, (_, i) => i),
  merge: (results: number[]) => results,
  maxWorkers: 4,
});

const daily = defineSchedule({
  name: "daily",
  cron: "0 4 * * *",
  action: { enqueue: report, input: { day: "today" } },
});

// @ts-expect-error: a schedule's enqueue input is typed by the task too
defineSchedule({ name: "typo", cron: "0 4 * * *", action: { enqueue: report, input: { dya: 1 } } });

const system = () => new System().add(report, nightly, squares, daily);

test("ctx.enqueue(definition, input) in a task handler queues that task", async () => {
  const rt = testRuntime({ system: system() });
  const run = await runTask(nightly, {}, { rt });
  assert.is(run.status, "completed", String(run.error));
  assert.equal(run.enqueued.map((e) => [e.type, e.input]), [["report", { day: "2025-01-01" }]]);
  const queued = await taskClient(rt).get(run.enqueued[0].refcode);
  assert.is(queued.type, "report");
  assert.is(queued.status, "queued");
});

test("enqueueTask(rt, definition, input) checks the input against the task's schema", async () => {
  const rt = testRuntime({ system: system() });
  const { refcode } = await enqueueTask(rt, report, { day: "d" });
  assert.is((await taskClient(rt).get(refcode)).type, "report");
  // @ts-expect-error: wrong input for the definition
  await enqueueTask(rt, report, { day: 3 }).then(
    () => assert.unreachable("accepted a bad input"),
    (err) => assert.is(err.name, "TaskInputError"),
  );
});

test("startParallelRun() queues a run as POST /parallel-tasks does, and refuses what it refuses", async () => {
  const rt = testRuntime({ system: system() });
  const started = await startParallelRun(rt, squares, { n: 3 }, { workerCount: 2 });
  assert.is(started.status, "queued");
  assert.is(started.taskId, "squares");
  // @ts-expect-error: the input is typed by the definition
  if (false as boolean) await startParallelRun(rt, squares, { n: "3" }, { workerCount: 2 });
  assert.ok(RUN_REFCODES.test(started.refcode), started.refcode);
  const refusal = async (run: () => Promise<unknown>) => {
    try {
      await run();
    } catch (err) {
      assert.instance(err, HttpProblem);
      return err as HttpProblem;
    }
    assert.unreachable("accepted");
  };
  const tooMany = await refusal(() => startParallelRun(rt, squares, { n: 3 }, { workerCount: 5 }));
  assert.is(tooMany!.status, 400);
  const bad = await refusal(() => startParallelRun(rt, squares, { n: -1 }, { workerCount: 1 }));
  assert.is(bad!.status, 400);
  assert.is((bad!.extra.issues as { path: string }[])[0].path, "input.n");
  const unknown = await refusal(() => startParallelRun(rt, "nope", {}, { workerCount: 1 }));
  assert.is(unknown!.status, 404);
});

test("runScheduleNow() queues one manual run, as POST /schedules/{name}/run does", async () => {
  const rt = testRuntime({ system: system() });
  const run = await runScheduleNow(rt, daily);
  assert.is(run.status, "queued");
  assert.is(run.trigger, "manual");
  try {
    await runScheduleNow(rt, "nope");
    assert.unreachable("ran an unknown schedule");
  } catch (err) {
    assert.instance(err, UnknownScheduleError);
  }
});

test.run();
