/**
 * @module HTTP routes of parallel tasks: start a run, read it, cancel it, plan capacity.
 */
import { describeRoute } from "hono-openapi";
import * as v from "valibot";
import { HttpProblem } from "../http/problem.ts";
import { jsonContent, problemResponse, validate } from "../http/validate.ts";
import { perRuntime, type Runtime } from "../runtime.ts";
import type { AppRoutes } from "../http/env.ts";
import { CapacityError, CapacityPlanner } from "./capacity.ts";
import { DEFAULT_MAX_WORKERS, PARALLEL_TASKS, type ParallelTask } from "./define.ts";
import { parallelMetrics } from "./metrics.ts";
import { RunStore, type RunView } from "./store.ts";
import { startParallelRun } from "./client.ts";
import { RUN_REFCODES } from "../jobs/refcode.ts";
import { isTerminal } from "../jobs/status.ts";

/** Largest `items` the capacity planner accepts. */
const MAX_ITEMS = 1e12;
/** Longest `deadline_ms` the capacity planner accepts (7 days). */
const MAX_DEADLINE_MS = 7 * 24 * 3_600_000;

const _between = (min: number, max: number) => `must be an integer from ${min} to ${max}`;

const _intQuery = (min: number, max: number) =>
  v.pipe(
    v.string(_between(min, max)),
    v.regex(/^\d{1,16}$/, _between(min, max)),
    v.transform(Number),
    v.minValue(min, _between(min, max)),
    v.maxValue(max, _between(min, max)),
  );

const RunAccepted = v.object({
  refcode: v.string(),
  task_id: v.string(),
  worker_count: v.number(),
  status: v.literal("queued"),
  status_url: v.string(),
});

const Run = v.object({
  refcode: v.string(),
  task_id: v.string(),
  worker_count: v.number(),
  status: v.picklist(["queued", "in_progress", "completed", "failed", "cancelled"]),
  progress: v.object({ done: v.number(), total: v.number() }),
  result: v.unknown(),
  error: v.nullable(v.string()),
  created_at: v.string(),
  started_at: v.nullable(v.string()),
  finished_at: v.nullable(v.string()),
});

const CapacityPlan = v.object({
  task_id: v.string(),
  items: v.number(),
  deadline_ms: v.number(),
  feasible: v.boolean(),
  workers: v.number(),
  workers_per_pod: v.number(),
  pods: v.number(),
  estimated_ms: v.number(),
  headroom: v.number(),
  pod_memory_bytes: v.number(),
  measured_at: v.pipe(v.string(), v.isoTimestamp()),
  calibration: v.record(v.string(), v.unknown()),
  formula: v.string(),
});

const RefcodeParam = v.object({ refcode: v.string() });

function _task(rt: Runtime, taskId: string): ParallelTask {
  const def = rt.system.get(PARALLEL_TASKS, taskId);
  if (!def) throw new HttpProblem(404, `Parallel task "${taskId}" is not defined`);
  return def;
}

async function _run(runs: RunStore, refcode: string): Promise<RunView> {
  const run = RUN_REFCODES.test(refcode) ? await runs.get(refcode) : null;
  if (!run) throw new HttpProblem(404, `Parallel run "${refcode}" does not exist or has expired`);
  return run;
}

/** One planner per runtime: its calibrations are cached and shared by every request. */
const _planner = perRuntime((rt) => new CapacityPlanner(rt.store, rt.config.parallelMaxWorkers));

const _invalid = (issues: { path: string; message: string }[]) =>
  new HttpProblem(400, "The request body is invalid", { issues });

/**
 * `POST /parallel-tasks`, `GET /parallel-tasks/capacity`, `GET` and `DELETE
 * /parallel-tasks/{refcode}`.
 *
 * @param app the Hono app
 * @param rt the runtime
 */
export const parallelRoutes: AppRoutes = (app, rt) => {
  const runs = new RunStore(rt.store, rt.config.keyPrefix);
  const metrics = parallelMetrics(rt);
  const planner = _planner(rt);
  const defs = rt.system.all(PARALLEL_TASKS);
  // The cluster's allowed maximum: the largest any task allows; a task may allow fewer.
  const maxWorkers = defs.length ? Math.max(...defs.map((d) => d.maxWorkers)) : DEFAULT_MAX_WORKERS;
  const messages: Record<string, string> = {
    task_id: "must be the name of a parallel task",
    worker_count: _between(1, maxWorkers),
    input: "is required (the task's input)",
  };
  const RunInput = v.strictObject({
    task_id: v.pipe(
      v.string(messages.task_id),
      v.nonEmpty("must be the name of a parallel task"),
      v.maxLength(64, "must be at most 64 characters"),
    ),
    worker_count: v.pipe(
      v.number(_between(1, maxWorkers)),
      v.integer(_between(1, maxWorkers)),
      v.minValue(1, _between(1, maxWorkers)),
      v.maxValue(maxWorkers, _between(1, maxWorkers)),
    ),
    input: v.unknown(),
  }, (issue) => {
    // A missing field is reported by the object: name what the field must be.
    const key = issue.path?.[0]?.key;
    if (typeof key === "string" && messages[key]) return messages[key];
    return issue.kind === "schema" && issue.type === "strict_object" && issue.path
      ? "is not a field of a parallel run (task_id, worker_count, input)"
      : "must be an object with task_id, worker_count and input";
  });
  const CapacityQuery = v.object({
    task_id: v.pipe(v.string("is required"), v.nonEmpty("is required")),
    items: _intQuery(1, MAX_ITEMS),
    deadline_ms: _intQuery(1, MAX_DEADLINE_MS),
  });

  app.post(
    "/parallel-tasks",
    describeRoute({
      tags: ["parallel tasks"],
      summary: "Start a run: its input is split into chunks run on up to worker_count threads",
      description: `worker_count is an integer from 1 to ${maxWorkers} (the task's maxWorkers).`,
      responses: {
        202: { description: "Queued", content: jsonContent(RunAccepted) },
        400: problemResponse("Bad worker_count or input, or an input over the task's limits"),
        404: problemResponse("Unknown task_id"),
        415: problemResponse("The body is not declared application/json"),
        429: problemResponse("The task has maxActiveRuns runs already; retry after Retry-After"),
      },
    }),
    validate("json", RunInput),
    async (c) => {
      const body = c.req.valid("json");
      const { refcode, taskId } = await startParallelRun(rt, body.task_id, body.input, {
        workerCount: body.worker_count,
      });
      const statusUrl = `/parallel-tasks/${refcode}`;
      c.header("location", statusUrl);
      c.header("retry-after", "1");
      return c.json({
        refcode,
        task_id: taskId,
        worker_count: body.worker_count,
        status: "queued" as const,
        status_url: statusUrl,
      }, 202);
    },
  );

  app.get(
    "/parallel-tasks/capacity",
    describeRoute({
      tags: ["parallel tasks"],
      summary: "How many workers and pods finish `items` items within `deadline_ms`",
      description:
        "Measures the task's cost per item once on a worker thread of this machine (at most " +
        "2 s, shared by concurrent requests, reused for every items value, taken again after " +
        "10 min); `measured_at` says when.",
      responses: {
        200: { description: "The plan", content: jsonContent(CapacityPlan) },
        400: problemResponse("Bad query, a run over the task's limits, or no sample"),
        404: problemResponse("Unknown task_id"),
      },
    }),
    validate("query", CapacityQuery),
    async (c) => {
      const { task_id, items, deadline_ms } = c.req.valid("query");
      const def = _task(rt, task_id);
      try {
        return c.json(await planner.plan(def, items, deadline_ms));
      } catch (err) {
        if (err instanceof CapacityError) throw new HttpProblem(400, err.message);
        throw err;
      }
    },
  );

  app.get(
    "/parallel-tasks/:refcode",
    describeRoute({
      tags: ["parallel tasks"],
      summary: "Read a run: status, progress (chunks done / total), result",
      responses: {
        200: { description: "The run", content: jsonContent(Run) },
        404: problemResponse("Unknown or expired refcode"),
      },
    }),
    validate("param", RefcodeParam),
    async (c) => c.json(await _run(runs, c.req.valid("param").refcode)),
  );

  app.delete(
    "/parallel-tasks/:refcode",
    describeRoute({
      tags: ["parallel tasks"],
      summary: "Cancel a run: its threads stop within 1 s, late results are dropped",
      responses: {
        202: { description: "Cancelled", content: jsonContent(Run) },
        404: problemResponse("Unknown or expired refcode"),
        409: problemResponse("The run already ended"),
      },
    }),
    validate("param", RefcodeParam),
    async (c) => {
      const { refcode } = c.req.valid("param");
      const before = RUN_REFCODES.test(refcode) ? await runs.cancel(refcode) : null;
      if (before === null) {
        throw new HttpProblem(404, `Parallel run "${refcode}" does not exist or has expired`);
      }
      const run = await _run(runs, refcode);
      if (isTerminal(before)) {
        throw new HttpProblem(
          409,
          `Cannot cancel parallel run "${refcode}": it is already ${before}`,
        );
      }
      // A closed label set: a run of a task this program does not define counts as `other`.
      const taskId = defs.some((d) => d.name === run.task_id) ? run.task_id : "other";
      metrics.cancels.inc({ task_id: taskId });
      await runs.forget(run.task_id, refcode);
      return c.json(run, 202);
    },
  );
};
