/**
 * @module Running a schedule now from code: what `POST /schedules/{name}/run` does.
 */
import type { Runtime } from "../runtime.ts";
import { SCHEDULES, UnknownScheduleError } from "./define.ts";
import type { ScheduleDefinition } from "./define.ts";
import { manualQueueKey, scheduleKeys } from "./keys.ts";
import { newRunId } from "./runs.ts";
import { type RunRecord, ScheduleStore } from "./store.ts";

/**
 * Queues one run of a schedule now, taken by exactly one `scheduler` replica however many run
 * (none running: it waits for one), as `POST /schedules/{name}/run` does.
 *
 * @param rt the runtime
 * @param schedule the schedule's definition or name
 * @returns the queued run (status `queued`; `GET /schedules/{name}/runs` follows it)
 * @throws {UnknownScheduleError} when the system has no such schedule
 * @example
 * ```ts ignore
 * const run = await runScheduleNow(rt, ordersReportNightly);
 * ```
 */
export async function runScheduleNow(
  rt: Runtime,
  schedule: ScheduleDefinition | string,
): Promise<RunRecord> {
  const name = typeof schedule === "string" ? schedule : schedule.name;
  if (!rt.system.get(SCHEDULES, name)) throw new UnknownScheduleError(name);
  const at = Date.now();
  const record = await new ScheduleStore(rt.store, rt.config.keyPrefix).queueManual(
    name,
    newRunId(at),
    at,
  );
  // Accepted (202) only once REDIS_WAIT_REPLICAS replicas hold the run and the request.
  await rt.store.replicate([
    scheduleKeys(rt.config.keyPrefix, name).runs,
    manualQueueKey(rt.config.keyPrefix),
  ]);
  return record;
}
