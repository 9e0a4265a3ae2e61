/**
 * @module A microservice runtime: one program that becomes, by `ROLE`, an HTTP API, a Kafka
 * consumer or bulk consumer, a cron scheduler, an async-task worker or a parallel-task worker.
 */
export { type Config, ConfigError, loadConfig, type Role, ROLES } from "./src/config.ts";
export { createLogger, type Logger, type LogLevel } from "./src/log.ts";
export {
  type Call,
  type Check,
  type Command,
  defineScript,
  key,
  type Reply,
  type Script,
  type Store,
  toHash,
  UnavailableError,
} from "./src/infra/store.ts";
export type { Bus, OutgoingMessage } from "./src/infra/bus.ts";
export { createRuntime, type Runtime, type Service } from "./src/runtime.ts";
export {
  APPLIED,
  type BulkConsumerDefinition,
  type BulkConsumerOptions,
  type BulkContext,
  type ConsumerContext,
  type ConsumerDefinition,
  type ConsumerOptions,
  defineBulkConsumer,
  defineConsumer,
  type Message,
} from "./src/consumers/define.ts";
export { applyOnce, type Effect } from "./src/consumers/once.ts";
export { DLQ_HEADERS } from "./src/consumers/dead-letter.ts";
export {
  type Definition,
  type DefinitionKind,
  type Definitions,
  type RouteModule,
  System,
} from "./src/system.ts";
export {
  type Clock,
  defineSchedule,
  ManualClock,
  type MissedPolicy,
  type OverlapPolicy,
  type ScheduleAction,
  type ScheduleContext,
  type ScheduleDefinition,
  type ScheduleOptions,
  Scheduler,
  validateSchedules,
} from "./src/scheduler/mod.ts";
export {
  type ChunkSignal,
  DEFAULT_MAX_WORKERS,
  defineParallelTask,
  type ParallelTask,
  type ParallelTaskOptions,
  type SplitContext,
} from "./src/parallel/define.ts";
export {
  type Backoff,
  defineTask,
  type EnqueueOptions,
  type EnqueueResult,
  enqueueTask,
  IdempotencyConflictError,
  NonRetryableError,
  TASK_STATUSES,
  TaskClient,
  taskClient,
  type TaskContext,
  type TaskDefinition,
  TaskInputError,
  TaskNotFoundError,
  type TaskOptions,
  TaskStateError,
  type TaskStatus,
  type TaskView,
  UnknownTaskTypeError,
} from "./src/tasks/mod.ts";
export type { AppEnv } from "./src/http/env.ts";
export { HttpProblem, type Issue, problem } from "./src/http/problem.ts";
export { jsonContent, problemResponse, validate } from "./src/http/validate.ts";
export { type AppOptions, createApp } from "./src/app.ts";
export { describeRoute, resolver } from "hono-openapi";
export { main, type Running, start } from "./src/main.ts";

if (import.meta.main) {
  // Not awaited: the example imports this module, which must finish evaluating first.
  Promise.all([import("./src/main.ts"), import("./src/example/mod.ts")])
    .then(([{ main }, { exampleSystem }]) => main(exampleSystem()))
    .then((code) => Deno.exit(code));
}
