/**
 * @module The example system of API.md, an app on the package like any team's: `main.ts` runs it,
 * the tests drive it.
 */
import { System } from "@svc/runtime";
import { exampleRoutes } from "./http.ts";
import { heartbeatSchedule, ordersReportNightly } from "./schedules.ts";
import { eventsConsumer, ordersConsumer } from "./consumers.ts";
import { primesTask } from "./parallel.ts";
import { ordersReportTask, sleepTask } from "./tasks.ts";

/**
 * Builds the example system: orders and events over HTTP, their consumers, the `sleep` and
 * `orders-report` tasks, the `primes` parallel task and the two schedules.
 *
 * @returns the system
 */
export function exampleSystem(): System {
  return new System()
    .add(ordersConsumer, eventsConsumer)
    .add(primesTask)
    .add(sleepTask, ordersReportTask)
    .add(heartbeatSchedule, ordersReportNightly)
    .routes(exampleRoutes);
}
