/**
 * @module What the dashboard shows, read from the store: tasks, parallel runs, schedules and
 * consumers, in the API's own shapes.
 */
import { perRuntime, type Runtime } from "../runtime.ts";
import { taskClient, type TaskView } from "../tasks/client.ts";
import { JOB_STATUSES, type JobStatus } from "../jobs/status.ts";
import { listSchedules } from "../scheduler/routes.ts";
import { validateSchedules } from "../scheduler/overrides.ts";
import { ScheduleStore } from "../scheduler/store.ts";
import { RunStore, type RunView } from "../parallel/store.ts";
import { PARALLEL_TASKS } from "../parallel/define.ts";
import { type ConsumerSummary, listConsumers } from "../consumers/status.ts";

/** Tasks listed per status. */
export const TASKS_PER_STATUS = 8;

/** One moment of the system, as the dashboard renders it. */
export interface Snapshot {
  at: string;
  tasks: { status: JobStatus; items: TaskView[] }[];
  schedules: Awaited<ReturnType<typeof listSchedules>>;
  /** Parallel runs that may still have work, with the processes running their chunks. */
  parallel: (RunView & { workers: string[] })[];
  consumers: ConsumerSummary[];
}

/** Parallel runs listed per task. */
export const RUNS_PER_TASK = 8;

async function _parallel(rt: Runtime, runs: RunStore) {
  const out: (RunView & { workers: string[] })[] = [];
  for (const def of rt.system.all(PARALLEL_TASKS)) {
    for (const { refcode } of await runs.active(def.name, RUNS_PER_TASK)) {
      const [view, workers] = await Promise.all([runs.get(refcode), runs.workers(refcode)]);
      if (view) out.push({ ...view, workers });
    }
  }
  return out;
}

/** What a snapshot reads, made once per runtime. */
const _sources = perRuntime((rt) => ({
  schedules: {
    resolved: validateSchedules(rt.system, rt.config),
    store: new ScheduleStore(rt.store, rt.config.keyPrefix),
  },
  runs: new RunStore(rt.store, rt.config.keyPrefix),
}));

/**
 * Reads a snapshot.
 *
 * @param rt the runtime
 * @returns the snapshot
 */
export async function collectSnapshot(rt: Runtime): Promise<Snapshot> {
  const { schedules, runs } = _sources(rt);
  const client = taskClient(rt);
  const [tasks, scheduleList, parallel, consumers] = await Promise.all([
    Promise.all(JOB_STATUSES.map(async (status) => ({
      status,
      items: await client.list(status, { limit: TASKS_PER_STATUS }),
    }))),
    listSchedules(schedules.resolved, schedules.store),
    _parallel(rt, runs),
    listConsumers(rt),
  ]);
  return { at: new Date().toISOString(), tasks, schedules: scheduleList, parallel, consumers };
}
