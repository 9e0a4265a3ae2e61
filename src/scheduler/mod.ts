/**
 * @module Schedules: cron ticks in a time zone, run exactly once per tick on any number of
 * `scheduler` replicas, with overlap and missed-run policies and a run history.
 */
export {
  DEFAULT_CATCH_UP_WINDOW_MS,
  DEFAULT_MISSED,
  DEFAULT_OVERLAP,
  DEFAULT_TIMEZONE,
  defineSchedule,
  type EnqueueAction,
  type HttpAction,
  MAX_CATCH_UP_RUNS,
  type MissedPolicy,
  type OverlapPolicy,
  type PerRun,
  type PublishAction,
  type ScheduleAction,
  type ScheduleContext,
  type ScheduleDefinition,
  type ScheduleFunction,
  type ScheduleOptions,
  type Trigger,
  UnknownScheduleError,
} from "./define.ts";
export { type Clock, ManualClock, systemClock } from "../async/clock.ts";
export { Cron, CronError } from "./cron.ts";
export { type ResolvedSchedule, validateSchedules } from "./overrides.ts";
export { Scheduler, type SchedulerOptions } from "./scheduler.ts";
export { scheduleRoutes } from "./routes.ts";
