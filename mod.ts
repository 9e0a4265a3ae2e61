/**
 * @module A microservice runtime: one program that becomes, by `ROLE`, an HTTP API, a Kafka
 * consumer or bulk consumer, a cron scheduler, an async-task worker or a parallel-task worker.
 *
 * A program defines its work with the `define*` functions, gathers it in a {@link System} and
 * runs it with {@link main}:
 *
 * ```ts ignore
 * import { defineTask, main, System } from "@svc/runtime";
 *
 * const hello = defineTask({ name: "hello", handler: () => ({ hello: "world" }) });
 * Deno.exit(await main(new System().add(hello)));
 * ```
 *
 * Importing this module starts nothing. Unit-test helpers are in `@svc/runtime/testing`.
 */
export { type Config, ConfigError, type KafkaSettings, type Role, ROLES } from "./src/config.ts";
export type { Logger, LogLevel } from "./src/log.ts";
export {
  type Check,
  type Command,
  defineScript,
  key,
  type Reply,
  type Script,
  type Store,
  UnavailableError,
} from "./src/infra/store.ts";
export type { Bus, OutgoingMessage } from "./src/infra/bus.ts";
export type {
  BusRecord,
  ConsumerBus,
  GroupConsumer,
  GroupConsumerOptions,
  PartitionOffset,
  TopicPartition,
} from "./src/infra/bus-consumer.ts";
export type {
  MetricSample,
  MetricsRegistry,
  MetricValues,
  RegisteredMetric,
  Runtime,
  RuntimeOptions,
} from "./src/runtime.ts";
export {
  APPLIED,
  type BaseContext,
  type BulkConsumerDefinition,
  type BulkConsumerOptions,
  type BulkContext,
  type CommonOptions,
  type ConsumerContext,
  type ConsumerDefinition,
  type ConsumerOptions,
  defineBulkConsumer,
  defineConsumer,
  type Message,
  type RetryOptions,
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
  defineSchedule,
  type EnqueueAction,
  type HttpAction,
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
} from "./src/scheduler/mod.ts";
export { runScheduleNow } from "./src/scheduler/client.ts";
export type { RunRecord as ScheduleRun, ScheduleRunStatus } from "./src/scheduler/store.ts";
export {
  type ChunkSignal,
  DEFAULT_MAX_WORKERS,
  defineParallelTask,
  type ParallelTask,
  type ParallelTaskOptions,
  type SplitContext,
} from "./src/parallel/define.ts";
export {
  type ParallelInput,
  type ParallelRunStarted,
  startParallelRun,
} from "./src/parallel/client.ts";
export {
  type Backoff,
  defineTask,
  type EnqueueOptions,
  type EnqueueResult,
  type EnqueueTask,
  enqueueTask,
  IdempotencyConflictError,
  NonRetryableError,
  TASK_STATUSES,
  TaskClient,
  taskClient,
  type TaskContext,
  type TaskDefinition,
  type TaskInput,
  TaskInputError,
  TaskNotFoundError,
  type TaskOptions,
  TaskStateError,
  type TaskStatus,
  type TaskView,
  UnknownTaskTypeError,
} from "./src/tasks/mod.ts";
export { type ErrorStatus, HttpProblem, type Issue } from "./src/http/problem.ts";
export {
  describeRoute,
  type Handler,
  jsonContent,
  type Middleware,
  type OpenApiContent,
  type OpenApiResponse,
  problem,
  problemResponse,
  type RouteContext,
  type RouteDescription,
  type RouteMethod,
  type RouteRequest,
  type Routes,
  type RouteVariables,
  validate,
  type ValidValues,
} from "./src/http/routes.ts";
export type { Target } from "./src/http/validate.ts";
export type {
  AsyncSchema,
  Schema,
  SchemaInput,
  SchemaOutput,
  SchemaStandard,
} from "./src/schema.ts";
export { main, type Running, start } from "./src/main.ts";
