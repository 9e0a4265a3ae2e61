/**
 * @module Errors of the task client, each mapped to one HTTP status by the routes.
 */
import type { Issue } from "../http/problem.ts";

/** No task type has that name (404). */
export class UnknownTaskTypeError extends Error {
  /**
   * Creates the error for one name.
   *
   * @param type the name asked for
   */
  constructor(readonly type: string) {
    super(`Task type "${type}" does not exist`);
    this.name = "UnknownTaskTypeError";
  }
}

/** The input fails the type's schema (400). */
export class TaskInputError extends Error {
  /**
   * Creates the error with the issues found.
   *
   * @param type the task type
   * @param issues where and what
   */
  constructor(readonly type: string, readonly issues: Issue[]) {
    super(`The input of task "${type}" is invalid: ${issues.map((i) => i.message).join("; ")}`);
    this.name = "TaskInputError";
  }
}

/** No task has that refcode, or it expired (404). */
export class TaskNotFoundError extends Error {
  /**
   * Creates the error for one refcode.
   *
   * @param refcode the refcode asked for
   */
  constructor(readonly refcode: string) {
    super(`Task "${refcode}" does not exist or has expired`);
    this.name = "TaskNotFoundError";
  }
}

/** The task is in a status that does not allow the operation (409). */
export class TaskStateError extends Error {
  /**
   * Creates the error for one task and action.
   *
   * @param refcode the task
   * @param status its status
   * @param action what was asked, e.g. `cancel`
   */
  constructor(readonly refcode: string, readonly status: string, action: string) {
    super(`Cannot ${action} task "${refcode}": it is ${status.replace("_", " ")}`);
    this.name = "TaskStateError";
  }
}

/**
 * An `Idempotency-Key` was reused with another input (409). The message names no task: the
 * earlier one is the caller's own (keys are scoped per caller and type), and `refcode` is for
 * code only.
 */
export class IdempotencyConflictError extends Error {
  /**
   * Creates the error for one refcode.
   *
   * @param refcode the task the key was first used for
   */
  constructor(readonly refcode: string) {
    super("The Idempotency-Key was already used with a different body");
    this.name = "IdempotencyConflictError";
  }
}

/** A task type holds as many waiting tasks as it may (429 with `Retry-After`). */
export class QueueFullError extends Error {
  /**
   * @param type the task type
   * @param limit its `maxQueued`
   */
  constructor(readonly type: string, readonly limit: number) {
    super(`Task type "${type}" already has ${limit} tasks waiting (its maxQueued); retry later`);
    this.name = "QueueFullError";
  }
}

/**
 * Thrown by a handler to fail its task at once, without the remaining attempts.
 *
 * @example
 * ```ts
 * if (!user) throw new NonRetryableError(`User "${id}" does not exist`);
 * ```
 */
export class NonRetryableError extends Error {
  /**
   * Creates the error.
   *
   * @param message why the task cannot succeed
   */
  constructor(message: string) {
    super(message);
    this.name = "NonRetryableError";
  }
}
