/**
 * @module HTTP routes of async tasks (API.md "Async tasks"): enqueue, read with long-poll,
 * cancel, list, retry. One `POST /tasks/{type}` per task type, so each input schema is in the
 * OpenAPI document.
 */
import * as v from "valibot";
import type { Context } from "hono";
import { describeRoute } from "hono-openapi";
import type { AppEnv, AppRoutes } from "../http/env.ts";
import { HttpProblem } from "../http/problem.ts";
import { valibotSchema } from "../schema.ts";
import { bearer } from "../http/auth.ts";
import { jsonContent, problemResponse, validate } from "../http/validate.ts";
import { TASKS } from "./define.ts";
import { isTerminal, JOB_STATUSES } from "../jobs/status.ts";
import { MAX_WAIT_MS, taskClient, type TaskView } from "./client.ts";
import {
  IdempotencyConflictError,
  QueueFullError,
  TaskInputError,
  TaskNotFoundError,
  TaskStateError,
  UnknownTaskTypeError,
} from "./errors.ts";

const Accepted = v.object({
  refcode: v.string(),
  type: v.string(),
  status: v.picklist(JOB_STATUSES),
  status_url: v.string(),
});

const Task = v.object({
  refcode: v.string(),
  type: v.string(),
  status: v.picklist(JOB_STATUSES),
  progress: v.nullable(v.pipe(v.number(), v.minValue(0), v.maxValue(1))),
  result: v.unknown(),
  error: v.nullable(v.string()),
  attempts: v.number(),
  created_at: v.pipe(v.string(), v.isoTimestamp()),
  updated_at: v.pipe(v.string(), v.isoTimestamp()),
});

const IdempotencyHeader = v.object({
  "idempotency-key": v.optional(
    v.pipe(
      v.string(),
      v.minLength(1),
      v.maxLength(255),
      v.description(
        "The same key and body within 24 h return the same refcode; another body → 409",
      ),
    ),
  ),
});

const WaitQuery = v.object({
  wait: v.optional(v.pipe(
    v.string(),
    v.regex(/^\d+(\.\d+)?$/, "wait must be a number of seconds"),
    v.transform(Number),
    v.maxValue(MAX_WAIT_MS / 1000, `wait must be at most ${MAX_WAIT_MS / 1000} seconds`),
    v.description("Hold the answer until the task is terminal or this many seconds pass"),
  )),
});

const ListQuery = v.object({
  status: v.optional(
    v.picklist(JOB_STATUSES, `status must be one of ${JOB_STATUSES.join(", ")}`),
  ),
  type: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(64))),
  limit: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^\d+$/, "limit must be an integer from 1 to 100"),
      v.transform(Number),
      v.minValue(1, "limit must be an integer from 1 to 100"),
      v.maxValue(100, "limit must be an integer from 1 to 100"),
    ),
    "20",
  ),
});

/** `Retry-After` of a 429 for a full queue: workers drain a queue in seconds, not minutes. */
const QUEUE_FULL_RETRY_S = 5;

const taskDoc = (description: string) => ({ description, content: jsonContent(Task) });
const UNAVAILABLE = { 503: problemResponse("The store is unreachable; retry later") };

/** Maps the client's errors to problem documents. */
function _problem(err: unknown): unknown {
  if (err instanceof UnknownTaskTypeError || err instanceof TaskNotFoundError) {
    return new HttpProblem(404, err.message);
  }
  if (err instanceof TaskInputError) {
    return new HttpProblem(400, "The request body is invalid", { issues: err.issues });
  }
  if (err instanceof TaskStateError) {
    return new HttpProblem(409, err.message, { status_of_task: err.status });
  }
  if (err instanceof IdempotencyConflictError) return new HttpProblem(409, err.message);
  if (err instanceof QueueFullError) {
    return new HttpProblem(429, err.message, { limit: err.limit }, {
      "retry-after": String(QUEUE_FULL_RETRY_S),
    });
  }
  return err;
}

async function _answer(work: () => Promise<Response>): Promise<Response> {
  try {
    return await work();
  } catch (err) {
    throw _problem(err);
  }
}

function _task(c: Context<AppEnv>, view: TaskView, status: 200 | 202): Response {
  if (!isTerminal(view.status)) c.header("retry-after", "1");
  return c.json(view, status);
}

/**
 * The routes of API.md's "Async tasks"; registered by the app for the `http` role.
 *
 * @param app the Hono app
 * @param rt the runtime
 */
export const taskRoutes: AppRoutes = (app, rt) => {
  const client = taskClient(rt);

  for (const def of rt.system.all(TASKS)) {
    app.post(
      `/tasks/${def.name}`,
      describeRoute({
        tags: ["tasks"],
        summary: `Enqueue a "${def.name}" task`,
        description: "Answers at once with the refcode; poll `status_url` for the result.",
        responses: {
          202: { description: "Accepted: the task is queued", content: jsonContent(Accepted) },
          400: problemResponse("The input fails the task's schema"),
          409: problemResponse("The Idempotency-Key was used with another body"),
          415: problemResponse("The body is not declared application/json"),
          429: problemResponse("The type's queue is full (maxQueued); retry after Retry-After"),
          ...UNAVAILABLE,
        },
      }),
      validate("header", IdempotencyHeader),
      validate("json", valibotSchema(def.input)),
      (c) =>
        _answer(async () => {
          // The body as sent (the schema's transforms run again before each run).
          const input = await c.req.json().catch(() => ({}));
          const key = c.req.valid("header")["idempotency-key"];
          // Keys are the caller's: another client's key names another request, never theirs.
          const task = await client.enqueueValid(def, input, {
            idempotencyKey: key,
            idempotencyScope: key === undefined ? undefined : bearer(c) ?? "",
          });
          const url = `/tasks/${task.refcode}`;
          c.header("location", url);
          c.header("retry-after", "1");
          if (!task.created) c.header("idempotent-replayed", "true");
          return c.json(
            { refcode: task.refcode, type: task.type, status: task.status, status_url: url },
            202,
          );
        }),
    );
  }

  app.post(
    "/tasks/:type",
    describeRoute({
      tags: ["tasks"],
      summary: "Enqueue a task of an unknown type",
      responses: { 404: problemResponse("No task type has that name") },
    }),
    (c) => {
      throw new HttpProblem(404, new UnknownTaskTypeError(c.req.param("type")).message);
    },
  );

  app.get(
    "/tasks",
    describeRoute({
      tags: ["tasks"],
      summary:
        "List the newest tasks in one status (failed: the dead-task list), or of every status",
      responses: {
        200: { description: "Tasks, newest first", content: jsonContent(v.array(Task)) },
        400: problemResponse("Bad status, type or limit"),
        ...UNAVAILABLE,
      },
    }),
    validate("query", ListQuery),
    (c) =>
      _answer(async () => {
        const { status, type, limit } = c.req.valid("query");
        return c.json(await client.list(status, { type, limit }));
      }),
  );

  app.get(
    "/tasks/:refcode",
    describeRoute({
      tags: ["tasks"],
      summary: "Read a task; `?wait=N` holds the answer until it is terminal",
      responses: {
        200: taskDoc("The task"),
        400: problemResponse("Bad wait"),
        404: problemResponse("Unknown or expired refcode"),
        ...UNAVAILABLE,
      },
    }),
    validate("query", WaitQuery),
    (c) =>
      _answer(async () => {
        const refcode = c.req.param("refcode");
        const wait = c.req.valid("query").wait;
        const view = wait ? await client.wait(refcode, wait * 1000) : await client.get(refcode);
        return _task(c, view, 200);
      }),
  );

  app.delete(
    "/tasks/:refcode",
    describeRoute({
      tags: ["tasks"],
      summary: "Cancel a task: a queued one never starts, a running one is stopped",
      responses: {
        202: taskDoc("Cancelled, or in progress until its handler stops (within 1 s)"),
        404: problemResponse("Unknown or expired refcode"),
        409: problemResponse("Already completed, failed or cancelled"),
        ...UNAVAILABLE,
      },
    }),
    (c) => _answer(async () => _task(c, await client.cancel(c.req.param("refcode")), 202)),
  );

  app.post(
    "/tasks/:refcode/retry",
    describeRoute({
      tags: ["tasks"],
      summary: "Run a failed task again, its attempts reset",
      responses: {
        202: taskDoc("Queued again"),
        404: problemResponse("Unknown or expired refcode"),
        409: problemResponse("The task is not failed"),
        ...UNAVAILABLE,
      },
    }),
    (c) =>
      _answer(async () => {
        const view = await client.retry(c.req.param("refcode"));
        c.header("location", `/tasks/${view.refcode}`);
        return _task(c, view, 202);
      }),
  );
};
