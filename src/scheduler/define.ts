/**
 * @module `defineSchedule`: a name, a cron in a time zone, an action, and what to do about
 * overlapping and missed runs.
 */
import { type Definition, type DefinitionKind, definitionKind } from "../definitions.ts";
import type { Runtime } from "../runtime.ts";
import type { Logger } from "../log.ts";
import type { TaskDefinition, TaskInput } from "../tasks/define.ts";
import { Cron, CronError } from "./cron.ts";

/** What starts a run: its tick, a missed tick caught up, or `POST /schedules/{name}/run`. */
export type Trigger = "schedule" | "catch-up" | "manual";

/** What a run sees. */
export interface ScheduleContext {
  /** The schedule's name. */
  readonly name: string;
  /** The tick this run is for (the request time for manual runs). */
  readonly scheduledAt: Date;
  /** Why it runs. */
  readonly trigger: Trigger;
  /** This run's id (also the idempotency key given to `enqueue` and HTTP calls). */
  readonly runId: string;
  /** Aborted when the scheduler stops and the shutdown deadline has passed. */
  readonly signal: AbortSignal;
  /** The process's runtime (store, bus, config). */
  readonly rt: Runtime;
  /** A logger tagged with the schedule and the run. */
  readonly log: Logger;
  /**
   * Enqueues an async task, typed by its definition; its refcode goes into the run's record.
   * The run's id is its idempotency key, so a run that is retried enqueues it once.
   *
   * @param task the task's definition (or its type's name)
   * @param input the task's input
   * @returns the refcode
   */
  enqueue<T extends TaskDefinition | string>(task: T, input: TaskInput<T>): Promise<string>;
}

/** A value given as is, or computed for each run. */
export type PerRun<T> = T | ((ctx: ScheduleContext) => T | Promise<T>);

/** An action written as a function. */
export type ScheduleFunction = (ctx: ScheduleContext) => unknown;

/** Enqueue an async task (the scheduler only triggers; the work runs on `async-worker`s). */
export interface EnqueueAction<T extends TaskDefinition | string = TaskDefinition | string> {
  /** The task's definition (its input is then typed), or its type's name. */
  enqueue: T;
  /** Its input; `{}` by default. */
  input?: PerRun<NoInfer<TaskInput<T>>>;
}

/** Publish one message to a Kafka topic (under `TOPIC_PREFIX`). */
export interface PublishAction {
  /** The topic, without `TOPIC_PREFIX`. */
  publish: string;
  /** The message key; the schedule's name by default. */
  key?: string;
  /** The value, sent as JSON; `{"schedule","scheduled_at"}` by default. */
  value?: PerRun<unknown>;
  /** Extra headers (`schedule` and `scheduled-at` are always set). */
  headers?: Record<string, string>;
}

/** Call another service over HTTP, with a timeout per attempt and retries. */
export interface HttpAction {
  /** The request. */
  http: {
    url: string;
    /** `POST` by default. */
    method?: string;
    headers?: Record<string, string>;
    /** Sent as JSON when set. */
    body?: PerRun<unknown>;
    /** Per attempt; 10 000 ms by default. */
    timeoutMs?: number;
    /** Further attempts after a network error, a timeout, 408, 429 or 5xx; 2 by default. */
    retries?: number;
    /** First backoff, doubled each retry (±20 %, at most 30 s); 500 ms by default. */
    retryDelayMs?: number;
  };
}

/** What a run does. */
export type ScheduleAction<T extends TaskDefinition | string = TaskDefinition | string> =
  | ScheduleFunction
  | EnqueueAction<T>
  | PublishAction
  | HttpAction;

/** Whether a tick may start while the schedule's previous run is still going. */
export type OverlapPolicy = "skip" | "allow";

/** What runs, after downtime, for the ticks no replica claimed in time. */
export type MissedPolicy = "skip" | "latest" | "all";

/** Default time zone. */
export const DEFAULT_TIMEZONE = "UTC";
/** Default overlap policy: a tick that finds the previous run still going is recorded skipped. */
export const DEFAULT_OVERLAP: OverlapPolicy = "skip";
/** Default missed policy: after downtime, the newest missed tick runs once. */
export const DEFAULT_MISSED: MissedPolicy = "latest";
/** Default catch-up window: missed ticks older than one hour never run. */
export const DEFAULT_CATCH_UP_WINDOW_MS = 3_600_000;
/** Most missed ticks `missed: "all"` runs after one outage (the newest ones). */
export const MAX_CATCH_UP_RUNS = 100;

/** What `defineSchedule` takes. */
export interface ScheduleOptions<T extends TaskDefinition | string = TaskDefinition | string> {
  /** Unique; letters, digits, `-` and `_` (it names `SCHEDULE_<NAME>_CRON` and a URL). */
  name: string;
  /** 5 fields, or 6 with seconds first; `SCHEDULE_<NAME>_CRON` overrides it. */
  cron: string;
  /** IANA zone the cron is read in; `UTC` by default. */
  timezone?: string;
  /** What each run does. */
  action: ScheduleAction<T>;
  /** `skip` (default) or `allow`. */
  overlap?: OverlapPolicy;
  /** `skip`, `latest` (default) or `all`. */
  missed?: MissedPolicy;
  /** How old a missed tick may be and still run; 1 h by default. */
  catchUpWindowMs?: number;
}

/** A schedule, as added to a `System`. */
export interface ScheduleDefinition extends Definition {
  /** Always `schedule`. */
  readonly kind: "schedule";
  /** The schedule's name. */
  readonly name: string;
  /** Its cron (before `SCHEDULE_<NAME>_CRON`). */
  readonly cron: string;
  /** The IANA zone the cron is read in. */
  readonly timezone: string;
  /** What each run does. */
  readonly action: ScheduleAction;
  /** Whether a tick may start while the previous run goes on. */
  readonly overlap: OverlapPolicy;
  /** What runs for missed ticks. */
  readonly missed: MissedPolicy;
  /** How old a missed tick may be and still run, in ms. */
  readonly catchUpWindowMs: number;
}

/** The key of the schedules in a program: `rt.system.all(SCHEDULES)`. */
export const SCHEDULES: DefinitionKind<ScheduleDefinition> = definitionKind("schedule");

/** No schedule of the system has that name. */
export class UnknownScheduleError extends Error {
  /**
   * Creates the error for one name.
   *
   * @param schedule the name asked for
   */
  constructor(readonly schedule: string) {
    super(`Schedule "${schedule}" does not exist`);
    this.name = "UnknownScheduleError";
  }
}

const _NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;

function _checkAction(name: string, action: unknown): ScheduleAction {
  if (typeof action === "function") return action as ScheduleFunction;
  const a = action as Record<string, unknown> | null;
  const task = a?.enqueue as { kind?: unknown } | string | undefined;
  if (typeof task === "string" ? task !== "" : task?.kind === "task") {
    return a as unknown as EnqueueAction;
  }
  if (a && typeof a.publish === "string" && a.publish !== "") return a as unknown as PublishAction;
  if (a && typeof a.http === "object" && a.http !== null) {
    const http = a.http as Record<string, unknown>;
    try {
      const url = new URL(String(http.url));
      if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error();
    } catch {
      throw new Error(`Schedule "${name}": http.url must be an http:// or https:// URL`);
    }
    for (const k of ["timeoutMs", "retries", "retryDelayMs"]) {
      const n = http[k];
      if (n !== undefined && (typeof n !== "number" || !Number.isFinite(n) || n < 0)) {
        throw new Error(`Schedule "${name}": http.${k} must be a number >= 0`);
      }
    }
    return a as unknown as HttpAction;
  }
  throw new Error(
    `Schedule "${name}": action must be a function, {enqueue}, {publish} or {http}`,
  );
}

/**
 * Defines a schedule.
 *
 * @param options name, cron, time zone, action and policies
 * @returns the definition, for `System.add`
 * @throws {Error} when a field is invalid (a bad cron names the schedule)
 * @example
 * ```ts
 * const nightly = defineSchedule({
 *   name: "orders-report-nightly",
 *   cron: "0 2 * * *",
 *   action: { enqueue: ordersReport, input: {} }, // the task's definition: input typed
 * });
 * const heartbeat = defineSchedule({
 *   name: "heartbeat",
 *   cron: "*\/30 * * * * *",
 *   action: () => {},
 * });
 * ```
 */
export function defineSchedule<T extends TaskDefinition | string>(
  options: ScheduleOptions<T>,
): ScheduleDefinition {
  const { name } = options;
  if (typeof name !== "string" || !_NAME.test(name)) {
    throw new Error(
      `Schedule name "${name}" is invalid: use 1-100 letters, digits, "-" and "_"`,
    );
  }
  const timezone = options.timezone ?? DEFAULT_TIMEZONE;
  try {
    Cron.parse(options.cron, timezone);
  } catch (err) {
    if (err instanceof CronError) throw new Error(`Schedule "${name}": ${err.message}`);
    throw err;
  }
  const overlap = options.overlap ?? DEFAULT_OVERLAP;
  if (overlap !== "skip" && overlap !== "allow") {
    throw new Error(`Schedule "${name}": overlap must be "skip" or "allow"`);
  }
  const missed = options.missed ?? DEFAULT_MISSED;
  if (missed !== "skip" && missed !== "latest" && missed !== "all") {
    throw new Error(`Schedule "${name}": missed must be "skip", "latest" or "all"`);
  }
  const catchUpWindowMs = options.catchUpWindowMs ?? DEFAULT_CATCH_UP_WINDOW_MS;
  if (!Number.isFinite(catchUpWindowMs) || catchUpWindowMs < 0) {
    throw new Error(`Schedule "${name}": catchUpWindowMs must be a number >= 0`);
  }
  return {
    kind: "schedule",
    name,
    cron: options.cron.trim(),
    timezone,
    action: _checkAction(name, options.action),
    overlap,
    missed,
    catchUpWindowMs,
  };
}
