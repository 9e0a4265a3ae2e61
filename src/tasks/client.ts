/**
 * @module The task client: enqueue, read, long-poll, cancel, list and retry tasks. Used by the
 * HTTP routes and by any code that enqueues (schedules, consumers, handlers).
 */
import { deadline, settleBy } from "../async/deadline.ts";
import { safeParse } from "../schema.ts";
import { perRuntime, type Runtime } from "../runtime.ts";
import { UnavailableError } from "../infra/store.ts";
import { toIssues } from "../http/validate.ts";
import {
  type EnqueueOptions,
  type EnqueueResult,
  FAILED_MIN_TTL_MS,
  type TaskDefinition,
  type TaskInput,
  TASKS,
} from "./define.ts";

export type { EnqueueOptions, EnqueueResult } from "./define.ts";
import { fnv1a, shardIndex, TASK_SHARDS, taskKeys, typeShards } from "./keys.ts";
import { isTerminal, JOB_STATUSES, type JobStatus } from "../jobs/status.ts";
import { type ChangeResult, TaskBroker, type TaskRecord } from "./broker.ts";
import { TASK_REFCODES } from "../jobs/refcode.ts";
import { taskMetrics } from "./metrics.ts";
import {
  IdempotencyConflictError,
  QueueFullError,
  TaskInputError,
  TaskNotFoundError,
  TaskStateError,
  UnknownTaskTypeError,
} from "./errors.ts";

/** How long an `Idempotency-Key` is remembered (API.md: 24 h). */
export const IDEMPOTENCY_TTL_MS = 24 * 3_600_000;

/**
 * How long a type's counted queue depth stands in for the queue cap (`maxQueued`), with this
 * process's own enqueues added: a count per enqueue would cost a round trip per task.
 */
const DEPTH_FRESH_MS = 250;

/** Longest `wait` (API.md: 30 s). */
export const MAX_WAIT_MS = 30_000;

/** A long-poll re-reads the task this often even without a notification (lost messages). */
const WAIT_BACKSTOP_MS = 5_000;

/** A long-poll checks this often whether the process is shutting down (a flag, no I/O). */
const WAIT_STOP_CHECK_MS = 250;

/** Longest wait for the notification subscription before answering 503. */
const SUBSCRIBE_TIMEOUT_MS = 2_000;

/** A task as the API shows it (API.md field names). */
export interface TaskView {
  /** The task's refcode. */
  refcode: string;
  /** Its type. */
  type: string;
  /** Its status. */
  status: JobStatus;
  /** Progress from 0 to 1, or null before any report. */
  progress: number | null;
  /** What the handler returned (`completed`). */
  result: unknown;
  /** Why it failed (`failed`). */
  error: string | null;
  /** Runs so far. */
  attempts: number;
  /** When it was enqueued, ISO-8601. */
  created_at: string;
  /** When it last changed, ISO-8601. */
  updated_at: string;
}

const _iso = (ms: string | undefined) => new Date(Number(ms ?? 0)).toISOString();

/**
 * Turns a stored record into the API's shape.
 *
 * @param refcode the task
 * @param record its stored fields
 * @returns the view
 */
export function toView(refcode: string, record: TaskRecord): TaskView {
  return {
    refcode,
    type: record.type,
    status: record.status as JobStatus,
    progress: record.progress === undefined ? null : Number(record.progress),
    result: record.result === undefined ? null : JSON.parse(record.result),
    error: record.error ?? null,
    attempts: Number(record.attempts ?? 0),
    created_at: _iso(record.created_at),
    updated_at: _iso(record.updated_at),
  };
}

/** JSON with object keys sorted, so equal values give equal text. */
function _canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(_canonical).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${_canonical(x)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

async function _sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Enqueues, reads and changes tasks. Get the runtime's one instance with {@link taskClient}.
 *
 * @example
 * ```ts
 * const client = taskClient(rt);
 * const { refcode } = await client.enqueue("sleep", { ms: 100 });
 * const view = await client.wait(refcode, 5000);
 * ```
 */
export class TaskClient {
  #rt: Runtime;
  #broker: TaskBroker;

  /** @param rt the runtime */
  #depth = new Map<string, { at: number; count: Promise<number>; added: number }>();
  /** `tasks_total{status="queued"}` of each type (a labelled child, not a label lookup each). */
  #queued = new Map<string, { inc(): void }>();

  /** Creates the client of a runtime (use {@link taskClient}: one per runtime). */
  constructor(rt: Runtime) {
    this.#rt = rt;
    this.#broker = new TaskBroker(rt.store, taskKeys(rt.config.keyPrefix));
  }

  /**
   * The broker underneath (for workers and tests).
   *
   * @internal
   */
  get broker(): TaskBroker {
    return this.#broker;
  }

  /**
   * Finds a task type.
   *
   * @param type its name
   * @returns the definition
   * @throws {UnknownTaskTypeError} when none has that name
   */
  definition(type: string): TaskDefinition {
    const def = this.#rt.system.get(TASKS, type);
    if (!def) throw new UnknownTaskTypeError(type);
    return def;
  }

  #typeShards = new Map<string, number[]>();

  /** The shards a type's new tasks go to. */
  #shards(def: TaskDefinition): number[] {
    let shards = this.#typeShards.get(def.name);
    if (!shards) this.#typeShards.set(def.name, shards = typeShards(def.name, def.shards));
    return shards;
  }

  /** Throws {@link QueueFullError} when the type's queue is at its cap. */
  async #roomFor(def: TaskDefinition): Promise<void> {
    let depth = this.#depth.get(def.name);
    if (!depth || Date.now() - depth.at > DEPTH_FRESH_MS) {
      const count = this.#broker.depth([def.name]).then((d) => d.get(def.name) ?? 0);
      depth = { at: Date.now(), count, added: 0 };
      this.#depth.set(def.name, depth);
      count.catch(() => this.#depth.delete(def.name));
    }
    if ((await depth.count) + depth.added >= def.maxQueued) {
      throw new QueueFullError(def.name, def.maxQueued);
    }
    depth.added++;
  }

  /**
   * Validates the input and creates the task, queued, in one atomic step.
   *
   * @param type the type's name or definition
   * @param input the input (checked against the type's schema)
   * @param options idempotency key, delay
   * @returns the refcode and status
   * @throws {UnknownTaskTypeError} unknown type
   * @throws {TaskInputError} input failing the schema
   * @throws {IdempotencyConflictError} key reused with another input
   * @throws {QueueFullError} the type already has `maxQueued` tasks waiting
   * @throws {UnavailableError} the store is down
   */
  async enqueue(
    type: string | TaskDefinition,
    input: unknown,
    options: EnqueueOptions = {},
  ): Promise<EnqueueResult> {
    const def = typeof type === "string" ? this.definition(type) : type;
    const checked = safeParse(def.input, input);
    if (!checked.success) throw new TaskInputError(def.name, toIssues(checked.issues));
    return await this.enqueueValid(def, input, options);
  }

  /**
   * {@link enqueue} of an input already checked against the type's schema (the HTTP route's
   * `validate` did), so it is not parsed twice.
   *
   * @internal
   * @param def the type
   * @param input the input, valid for `def.input`
   * @param options idempotency key, delay
   * @returns the refcode and status
   */
  async enqueueValid(
    def: TaskDefinition,
    input: unknown,
    options: EnqueueOptions = {},
  ): Promise<EnqueueResult> {
    await this.#roomFor(def);
    const json = JSON.stringify(input ?? null);
    const idempotency = options.idempotencyKey === undefined ? undefined : {
      keyHash: await _sha256(
        `${options.idempotencyScope ?? ""}\n${def.name}\n${options.idempotencyKey}`,
      ),
      fingerprint: await _sha256(`${def.name}\n${_canonical(input ?? null)}`),
      ttlMs: IDEMPOTENCY_TTL_MS,
    };
    // The refcode picks the task's shard: one of the type's shards, or, with an idempotency
    // key, the one the key picks (the key's record and the task share a slot). At most one
    // draw in TASK_SHARDS (4) is kept, so a refcode keeps 128 of its 130 random bits or more.
    const ofType = this.#shards(def);
    const shards = idempotency ? [ofType[fnv1a(idempotency.keyHash) % ofType.length]] : ofType;
    const { outcome, refcode } = await this.#broker.enqueue({
      refcode: TASK_REFCODES.make(
        shards.length === TASK_SHARDS ? undefined : (r) => shards.includes(shardIndex(r)),
      ),
      type: def.name,
      input: json,
      maxAttempts: def.attempts,
      ttlMs: def.resultTtlMs,
      failedTtlMs: Math.max(def.resultTtlMs, FAILED_MIN_TTL_MS),
      delayMs: options.delayMs ?? 0,
      idempotency,
    });
    if (outcome === "conflict") throw new IdempotencyConflictError(refcode);
    // Answered 202 only once REDIS_WAIT_REPLICAS replicas hold it; a repeat with the same
    // Idempotency-Key waits again, so a retry after a 503 gets the same refcode, durably.
    // The record and the idempotency record share a shard, hence a node.
    await this.#rt.store.replicate([this.#broker.keys.record(refcode)]);
    if (outcome === "created") {
      let queued = this.#queued.get(def.name);
      if (!queued) {
        queued = taskMetrics(this.#rt).transitions.child(def.name, "queued");
        this.#queued.set(def.name, queued);
      }
      queued.inc();
      return { refcode, type: def.name, status: "queued", created: true };
    }
    const record = await this.#broker.get(refcode);
    return {
      refcode,
      type: def.name,
      status: (record?.status ?? "completed") as JobStatus,
      created: false,
    };
  }

  /**
   * Reads a task.
   *
   * @param refcode the task
   * @returns the task
   * @throws {TaskNotFoundError} unknown or expired
   */
  async get(refcode: string): Promise<TaskView> {
    const record = TASK_REFCODES.test(refcode) ? await this.#broker.get(refcode) : null;
    if (!record) throw new TaskNotFoundError(refcode);
    return toView(refcode, record);
  }

  /**
   * Reads a task once it is terminal or `ms` passed, woken by the terminal notification.
   *
   * @param refcode the task
   * @param ms longest wait (at most 30 s)
   * @param signal stops waiting early (e.g. the client went away)
   * @returns the task as it is then
   * @throws {TaskNotFoundError} unknown or expired
   */
  async wait(refcode: string, ms: number, signal?: AbortSignal): Promise<TaskView> {
    const first = await this.get(refcode);
    if (isTerminal(first.status) || ms <= 0) return first;
    const deadline = Date.now() + Math.min(ms, MAX_WAIT_MS);
    let wake!: () => void;
    let woken = new Promise<void>((resolve) => (wake = resolve));
    // The task's own channel: only waiters hear about it, and a completion nobody waits for
    // costs a PUBLISH to no one.
    const unsubscribe = await this.#subscribe(refcode, () => wake());
    const onAbort = () => wake();
    signal?.addEventListener("abort", onAbort);
    const stopCheck = setInterval(() => this.#rt.stopping && wake(), WAIT_STOP_CHECK_MS);
    try {
      // Subscribed before this read, so a notification between the two is not missed.
      let view = await this.get(refcode);
      while (
        !isTerminal(view.status) && Date.now() < deadline && !signal?.aborted &&
        !this.#rt.stopping
      ) {
        await settleBy(woken, Math.min(deadline, Date.now() + WAIT_BACKSTOP_MS));
        woken = new Promise<void>((resolve) => (wake = resolve));
        view = await this.get(refcode);
      }
      return view;
    } finally {
      clearInterval(stopCheck);
      signal?.removeEventListener("abort", onAbort);
      unsubscribe().catch(() => {});
    }
  }

  /** Subscribes to a task's terminal notification, or answers 503 within a bound. */
  async #subscribe(refcode: string, onDone: () => void): Promise<() => Promise<void>> {
    const channel = taskKeys(this.#rt.config.keyPrefix).doneChannel(refcode);
    const subscribing = this.#rt.store.subscribe(channel, onDone);
    try {
      return await deadline(
        subscribing,
        SUBSCRIBE_TIMEOUT_MS,
        () => new UnavailableError("redis", "cannot subscribe to task notifications"),
      );
    } catch (err) {
      // A subscription that completes after the timeout is dropped at once.
      subscribing.then((unsubscribe) => unsubscribe()).catch(() => {});
      throw err instanceof UnavailableError ? err : new UnavailableError("redis", String(err));
    }
  }

  #changed(refcode: string, change: ChangeResult, action: string): TaskView {
    if (change.outcome === "missing" || !change.record) throw new TaskNotFoundError(refcode);
    const view = toView(refcode, change.record);
    if (change.outcome === "terminal" || change.outcome === "state") {
      throw new TaskStateError(refcode, view.status, action);
    }
    return view;
  }

  /**
   * Cancels a task: a queued one never starts; a running one gets its signal fired wherever it
   * runs and ends `cancelled` (never retried).
   *
   * @param refcode the task
   * @returns the task afterwards (`cancelled`, or `in_progress` until its run stops)
   * @throws {TaskNotFoundError} unknown or expired
   * @throws {TaskStateError} already completed, failed or cancelled
   */
  async cancel(refcode: string): Promise<TaskView> {
    if (!TASK_REFCODES.test(refcode)) throw new TaskNotFoundError(refcode);
    const change = await this.#broker.cancel(refcode);
    const view = this.#changed(refcode, change, "cancel");
    if (change.outcome === "cancelled") {
      const metrics = taskMetrics(this.#rt);
      metrics.transitions.child(metrics.label(view.type), "cancelled").inc();
    }
    return view;
  }

  /**
   * Runs a failed task again, its attempts reset.
   *
   * @param refcode the task
   * @returns the task, queued
   * @throws {TaskNotFoundError} unknown or expired
   * @throws {TaskStateError} not failed
   */
  async retry(refcode: string): Promise<TaskView> {
    if (!TASK_REFCODES.test(refcode)) throw new TaskNotFoundError(refcode);
    const view = this.#changed(refcode, await this.#broker.retry(refcode), "retry");
    const metrics = taskMetrics(this.#rt);
    metrics.transitions.child(metrics.label(view.type), "queued").inc();
    return view;
  }

  /**
   * Lists the newest tasks in one status (for `failed`: the dead-task list), or without a
   * status the newest of every status, by when they last changed.
   *
   * @param status the status; every status when undefined
   * @param options `type` filter, `limit` (default 20)
   * @returns the tasks, newest first
   */
  async list(
    status?: JobStatus,
    options: { type?: string; limit?: number } = {},
  ): Promise<TaskView[]> {
    const types = this.#rt.system.all(TASKS).map((d) => d.name);
    const limit = options.limit ?? 20;
    const lists = await Promise.all(
      (status ? [status] : JOB_STATUSES).map((s) =>
        this.#broker.list(s, limit, { type: options.type, types })
      ),
    );
    return lists.flat()
      .sort((a, b) => Number(b.updated_at) - Number(a.updated_at))
      .slice(0, limit)
      .map((r) => toView(r.refcode, r));
  }
}

/**
 * The runtime's task client (one per runtime).
 *
 * @param rt the runtime
 * @returns the client
 */
export const taskClient: (rt: Runtime) => TaskClient = perRuntime((rt) => new TaskClient(rt));

/**
 * Enqueues a task: what schedules, consumers and handlers call.
 *
 * @param rt the runtime
 * @param type the type's name or definition
 * @param input its input
 * @param options `idempotencyKey` (24 h), `delayMs`
 * @returns the refcode and status
 * @example
 * ```ts
 * const { refcode } = await enqueueTask(rt, "orders-report", {}, { idempotencyKey: runId });
 * ```
 */
export function enqueueTask<T extends TaskDefinition | string>(
  rt: Runtime,
  type: T,
  input: TaskInput<T>,
  options: EnqueueOptions = {},
): Promise<EnqueueResult> {
  return taskClient(rt).enqueue(type, input, options);
}
