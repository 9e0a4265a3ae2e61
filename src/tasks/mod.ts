/**
 * @module Async tasks: define a type, enqueue it, read it by refcode; the worker role runs it.
 */
export {
  type Backoff,
  defineTask,
  type EnqueueTask,
  exponentialBackoff,
  type TaskContext,
  type TaskDefinition,
  type TaskInput,
  type TaskOptions,
} from "./define.ts";
export {
  type EnqueueOptions,
  type EnqueueResult,
  enqueueTask,
  TaskClient,
  taskClient,
  type TaskView,
} from "./client.ts";
export {
  IdempotencyConflictError,
  NonRetryableError,
  TaskInputError,
  TaskNotFoundError,
  TaskStateError,
  UnknownTaskTypeError,
} from "./errors.ts";
// The job statuses under the names the tasks API has always had.
export { JOB_STATUSES as TASK_STATUSES, type JobStatus as TaskStatus } from "../jobs/status.ts";
export { TaskWorker, type TaskWorkerOptions } from "./worker.ts";
export { Recoverer, type RecovererOptions } from "./recoverer.ts";
export { asyncWorkerServices } from "./role.ts";
export { taskRoutes } from "./routes.ts";
