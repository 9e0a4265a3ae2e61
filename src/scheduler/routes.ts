/**
 * @module `GET /schedules`, `GET /schedules/{name}/runs`, `POST /schedules/{name}/run`.
 */
import * as v from "valibot";
import { describeRoute } from "hono-openapi";
import type { AppRoutes } from "../http/env.ts";
import { HttpProblem } from "../http/problem.ts";
import { jsonContent, problemResponse, validate } from "../http/validate.ts";
import { type ResolvedSchedule, validateSchedules } from "./overrides.ts";
import { runScheduleNow } from "./client.ts";
import { type RunRecord, RUNS_KEPT, ScheduleStore } from "./store.ts";

/** Runs listed when `limit` is absent. */
export const DEFAULT_RUNS_LIMIT = 20;

const Run = v.object({
  scheduled_at: v.string(),
  started_at: v.nullable(v.string()),
  finished_at: v.nullable(v.string()),
  status: v.picklist(["queued", "running", "completed", "failed", "skipped"]),
  replica: v.nullable(v.string()),
  refcode: v.optional(v.string()),
});

const ScheduleView = v.object({
  name: v.string(),
  cron: v.string(),
  timezone: v.string(),
  enabled: v.boolean(),
  next_run_at: v.nullable(v.string()),
  last_run: v.nullable(Run),
});

const NameParam = v.object({ name: v.pipe(v.string(), v.maxLength(100)) });

const RunsQuery = v.object({
  limit: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^\d+$/, `limit must be an integer from 1 to ${RUNS_KEPT}`),
      v.transform(Number),
      v.minValue(1, `limit must be an integer from 1 to ${RUNS_KEPT}`),
      v.maxValue(RUNS_KEPT, `limit must be an integer from 1 to ${RUNS_KEPT}`),
    ),
  ),
});

const _iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/**
 * A run as the API shows it.
 *
 * @param r the stored record
 * @returns `{scheduled_at, started_at, finished_at, status, replica, refcode?}`
 */
export function runView(r: RunRecord): v.InferOutput<typeof Run> {
  return {
    scheduled_at: _iso(r.scheduledAt)!,
    started_at: _iso(r.startedAt),
    finished_at: _iso(r.finishedAt),
    status: r.status,
    replica: r.replica,
    ...(r.refcode ? { refcode: r.refcode } : {}),
  };
}

/**
 * Every schedule with its next and last run, as `GET /schedules` shows them.
 *
 * @param schedules the resolved schedules
 * @param store the run store
 * @returns the list
 */
export async function listSchedules(
  schedules: Map<string, ResolvedSchedule>,
  store: ScheduleStore,
): Promise<v.InferOutput<typeof ScheduleView>[]> {
  const now = Date.now();
  const list = [...schedules.values()];
  const lasts = await Promise.all(list.map((s) => store.runs(s.def.name, 1)));
  return list.map((s, i) => ({
    name: s.def.name,
    cron: s.cron,
    timezone: s.def.timezone,
    enabled: s.enabled,
    next_run_at: s.parsed ? _iso(s.parsed.next(now)) : null,
    last_run: lasts[i][0] ? runView(lasts[i][0]) : null,
  }));
}

/**
 * The schedules API, on any role that serves HTTP (it reads the store; runs happen on the
 * `scheduler` role).
 *
 * @param app the Hono app
 * @param rt the runtime
 */
export const scheduleRoutes: AppRoutes = (app, rt) => {
  const schedules = validateSchedules(rt.system, rt.config);
  const store = new ScheduleStore(rt.store, rt.config.keyPrefix);
  const known = (name: string) => {
    const s = schedules.get(name);
    if (!s) throw new HttpProblem(404, `Schedule "${name}" does not exist`);
    return s;
  };

  app.get(
    "/schedules",
    describeRoute({
      tags: ["schedules"],
      summary: "List the schedules with their next and last run",
      responses: {
        200: { description: "The schedules", content: jsonContent(v.array(ScheduleView)) },
      },
    }),
    async (c) => c.json(await listSchedules(schedules, store)),
  );

  app.get(
    "/schedules/:name/runs",
    describeRoute({
      tags: ["schedules"],
      summary: `A schedule's newest runs, newest first (at most ${RUNS_KEPT} are kept)`,
      responses: {
        200: { description: "The runs", content: jsonContent(v.array(Run)) },
        400: problemResponse("Invalid limit"),
        404: problemResponse("Unknown schedule"),
      },
    }),
    validate("param", NameParam),
    validate("query", RunsQuery),
    async (c) => {
      const { name } = c.req.valid("param");
      known(name);
      const limit = c.req.valid("query").limit ?? DEFAULT_RUNS_LIMIT;
      return c.json((await store.runs(name, limit)).map(runView));
    },
  );

  app.post(
    "/schedules/:name/run",
    describeRoute({
      tags: ["schedules"],
      summary: "Run a schedule now, once, on one scheduler replica",
      responses: {
        202: { description: "Queued for a scheduler replica", content: jsonContent(Run) },
        404: problemResponse("Unknown schedule"),
      },
    }),
    validate("param", NameParam),
    async (c) => {
      const { name } = c.req.valid("param");
      known(name);
      const record = await runScheduleNow(rt, name);
      c.header("location", `/schedules/${encodeURIComponent(name)}/runs`);
      return c.json(runView(record), 202);
    },
  );
};
