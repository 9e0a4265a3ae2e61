/**
 * @module The example system's schedules (API.md): `heartbeat` and `orders-report-nightly`.
 */
import { defineSchedule } from "@svc/runtime";
import { ordersReportTask } from "./tasks.ts";

/** Every 30 seconds (six fields: with seconds); records a run and nothing else. */
export const heartbeatSchedule = defineSchedule({
  name: "heartbeat",
  cron: "*/30 * * * * *",
  action: () => {},
});

/**
 * Every night at 02:00 UTC, enqueues an `orders-report` async task: the scheduler only
 * triggers, an `async-worker` counts the orders. The task's refcode is in the run's record.
 */
export const ordersReportNightly = defineSchedule({
  name: "orders-report-nightly",
  cron: "0 2 * * *",
  timezone: "UTC",
  action: { enqueue: ordersReportTask, input: {} },
});
