/**
 * @module The worker loop: claims tasks, runs their handlers under a lease, writes how each run
 * ended, and at shutdown finishes or hands back what it holds.
 */
import { backoff } from "../async/backoff.ts";
import { settleBy } from "../async/deadline.ts";
import { delay } from "../async/delay.ts";
import { safeParse } from "../schema.ts";
import type { Runtime, Service } from "../runtime.ts";
import type { Logger } from "../log.ts";
import type { Check } from "../infra/store.ts";
import { type TaskContext, type TaskDefinition, TASKS } from "./define.ts";
import { enqueueTask } from "./client.ts";
import { shardIndex, TASK_SHARDS, taskKeys } from "./keys.ts";
import {
  type ClaimedTask,
  type FinishEntry,
  type FinishResult,
  type Outcome,
  TaskBroker,
} from "./broker.ts";
import { type Lease, type LeaseKeeper, startLeaseKeeper } from "./lease-keeper.ts";
import { type TaskMetrics, taskMetrics } from "./metrics.ts";
import type { CounterChild, GaugeChild, HistogramChild } from "../infra/metrics.ts";
import { NonRetryableError } from "./errors.ts";

/** Default lease: a dead worker's tasks run again this long after it stopped renewing. */
export const LEASE_MS = 10_000;

/** Default fallback poll while idle (notifications normally wake the worker at once). */
export const POLL_MS = 1_000;

/** After a cancel or timeout, how long a handler may take to stop before its run is closed. */
export const ABORT_GRACE_MS = 500;

/** How often running tasks are checked against their timeout (one timer for all runs). */
const TIMEOUT_SWEEP_MS = 50;

/** Most tasks one claim asks for per type. */
const CLAIM_BATCH = 100;

/**
 * A type whose runs take less than this (on average) gets claimed ahead under a backlog: up to
 * its concurrency again in tasks held, leases kept, until a slot frees. For such runs the claim's
 * round trip is as long as the run itself; claimed ahead, a freed slot starts the next task at
 * once. Longer runs gain nothing from it and would keep tasks from other workers.
 */
const PREFETCH_BELOW_MS = 20;

/**
 * Longest a task claimed ahead waits for a slot before it is handed back (unattempted, for any
 * worker to take) and claiming ahead stops for its type until a run ends quickly again: runs
 * that turned long must not keep tasks from idle workers.
 */
const HOLD_MAX_MS = 100;

/** Most runs closed in one write. */
const FINISH_BATCH = 200;

/** How long closing a run is retried while the store is down. */
const FINISH_RETRY_MS = 60_000;

/** Waits of the claim loop while claiming fails. */
const CLAIM_BACKOFF = { initialMs: 100, maxMs: 2000 };

/** Retries of a failed outcome write. */
const FINISH_BACKOFF = { initialMs: 50, maxMs: 2000 };

/** Retries of a failed subscription. */
const SUBSCRIBE_BACKOFF = { initialMs: 200, maxMs: 5000 };

/** Progress writes per run are at most this frequent. */
const PROGRESS_EVERY_MS = 100;

/** Options of {@link TaskWorker}. */
export interface TaskWorkerOptions {
  /** Lease length; default 10 s. */
  leaseMs?: number;
  /** Idle poll interval, a fallback for lost notifications; default 1 s. */
  pollMs?: number;
  /** Overrides every type's `concurrency` (benchmarks, tests). */
  concurrency?: number;
  /** Only these types (default: every task type of the system). */
  types?: string[];
  /** `loop` forces renewals on the event loop (default: a thread on Redis; see lease-keeper). */
  leaseKeeper?: "auto" | "loop";
}

type _Cause = "cancel" | "timeout" | "lost" | "shutdown";

interface _Run {
  task: ClaimedTask;
  def: TaskDefinition;
  /** Made on first use of `ctx.signal` (most handlers never look). */
  controller?: AbortController;
  /** Why the run was aborted, once it was. */
  reason?: DOMException;
  /** When the run times out (epoch ms); set when its handler starts. */
  deadline: number;
  /** Whether its handler started (a run claimed ahead waits in its type's buffer first). */
  started: boolean;
  /** When it was put in its type's buffer (epoch ms). */
  heldAt?: number;
  cause?: _Cause;
  /** Set once the outcome is decided; later outcomes are ignored. */
  closed: boolean;
  startedAt: number;
  /** The grace timer after an abort. */
  grace?: ReturnType<typeof setTimeout>;
  /** Settles when the outcome is written (or given up). */
  written?: Promise<void>;
  progress: { value?: number; timer?: ReturnType<typeof setTimeout>; written?: number };
}

const _message = (err: unknown) => err instanceof Error ? err.message : String(err);

type _Pending = { entry: FinishEntry; resolve: (r: FinishResult | "unwritten") => void };

/**
 * Writes run outcomes in batches: one write in flight, the next batch gathering meanwhile.
 * Exported for its test only.
 */
export class _Finisher {
  #broker: TaskBroker;
  #log: Logger;
  #queue: _Pending[] = [];
  #flushing: Promise<void> | undefined;
  /** Give up retrying at this time (set at shutdown). */
  deadline = Infinity;

  constructor(broker: TaskBroker, log: Logger) {
    this.#broker = broker;
    this.#log = log;
  }

  write(entry: FinishEntry): Promise<FinishResult | "unwritten"> {
    return new Promise((resolve) => {
      this.#queue.push({ entry, resolve });
      this.#flushing ??= this.#flush();
    });
  }

  /** Resolves when every queued write is done. */
  async drain(): Promise<void> {
    while (this.#flushing) await this.#flushing;
  }

  async #flush(): Promise<void> {
    try {
      while (this.#queue.length) await this.#writeBatch(this.#queue.splice(0, FINISH_BATCH));
    } finally {
      // In the step that found the queue empty, with no await between: a write arriving
      // after it starts a new flush instead of joining one that has ended.
      this.#flushing = undefined;
    }
  }

  async #writeBatch(batch: _Pending[]): Promise<void> {
    const giveUp = Math.min(Date.now() + FINISH_RETRY_MS, this.deadline);
    for (let attempt = 0;; attempt++) {
      try {
        const results = await this.#broker.finish(batch.map((b) => b.entry));
        batch.forEach((b, i) => b.resolve(results[i]));
        return;
      } catch (err) {
        if (Date.now() >= Math.min(giveUp, this.deadline)) {
          this.#log.error("task outcomes not written; their leases will expire", {
            error: err,
            tasks: batch.map((b) => b.entry.refcode),
          });
          batch.forEach((b) => b.resolve("unwritten"));
          return;
        }
        if (attempt === 0) this.#log.warn("writing task outcomes failed", { error: err });
        const left = Math.max(0, this.deadline - Date.now());
        await delay(Math.min(backoff(attempt + 1, FINISH_BACKOFF), left));
      }
    }
  }
}

/**
 * Runs the tasks of the system: the `async-worker` role's main service.
 *
 * Each type has its own slots (`concurrency`). Tasks sit in shards (see `keys.ts`); the worker
 * knows, per type, the shards that may hold ready tasks (a claim left their list non-empty, or a
 * notification named them). Each round of claims takes every type with free slots to the next
 * of its shards with work, in turn, so no shard's backlog holds another's back; the claims of
 * one round (one per shard visited, each serving every type in that shard) go out together.
 * It claims again at once while a type with free slots may have more, and when a slot of such a
 * type frees. Under a backlog of a type with short runs it claims ahead, up to the type's
 * concurrency again, so a freed slot starts the next task without waiting for a claim (see
 * PREFETCH_BELOW_MS). Otherwise it waits for a notification on the ready channel (published
 * when a queue stops being empty, naming its type and shard), for the next scheduled retry of a
 * shard, or for the fallback poll, which looks at every shard.
 */
export class TaskWorker implements Service {
  readonly name = "task-worker";
  #rt: Runtime;
  #log: Logger;
  #broker: TaskBroker;
  #metrics: TaskMetrics;
  /** Per type, the metric records every run updates (looked up once). */
  #typeMetrics = new Map<
    string,
    { inProgress: CounterChild; running: GaugeChild; startDelay: HistogramChild }
  >();
  #defs = new Map<string, TaskDefinition>();
  #limits = new Map<string, number>();
  #busy = new Map<string, number>();
  /** Per type, runs claimed ahead whose handler has not started (FIFO). */
  #held = new Map<string, _Run[]>();
  /** Per type, the mean handler time of recent runs (ms, exponentially weighted). */
  #runMs = new Map<string, number>();
  #runs = new Map<string, _Run>();
  #drainWaiters: (() => void)[] = [];
  #finisher: _Finisher;
  #keeper: LeaseKeeper | undefined;
  #unsubscribe: (() => Promise<void>)[] = [];
  #subscribed: Promise<void> = Promise.resolve();
  #leaseMs: number;
  #pollMs: number;
  #keeperMode: "auto" | "loop";
  #id: string;
  #seq = 0;
  #rotate = 0;
  /** Per type, a counter that turns its claims over its shards with work. */
  #turn = new Map<string, number>();
  /** Per shard, when its next scheduled task is due (epoch ms), as its last claim said. */
  #due = new Map<number, number>();
  /** Whether the next round looks at every shard (start, fallback poll, after a failure). */
  #sweep = true;
  /**
   * When a round last looked at every shard (epoch ms). A busy worker does so once per poll
   * interval too: a lost notification must not leave a shard's tasks waiting while other shards
   * keep it busy.
   */
  #sweptAt = 0;
  #loop: Promise<void> | undefined;
  #stopping = false;
  #dirty = false;
  /**
   * Per type, the shards whose queue may hold ready tasks: the last claim there left it
   * non-empty, or a ready notification came since. A freed slot of such a type claims again at
   * once; the others wait for a notification (their queues were empty when last claimed).
   */
  #more = new Map<string, Set<number>>();
  /** `<type>:<shard>` named by ready notifications since the current round was sent. */
  #notified = new Set<string>();
  #wake: (() => void) | undefined;
  #lastError = "";
  #sweeper: ReturnType<typeof setInterval> | undefined;

  /**
   * @param rt the runtime
   * @param options lease, poll, concurrency, types
   */
  constructor(rt: Runtime, options: TaskWorkerOptions = {}) {
    this.#rt = rt;
    this.#id = `${rt.instanceId}.${crypto.randomUUID().slice(0, 4)}`;
    this.#log = rt.log.child({ component: "task-worker" });
    this.#broker = new TaskBroker(rt.store, taskKeys(rt.config.keyPrefix));
    this.#metrics = taskMetrics(rt);
    this.#finisher = new _Finisher(this.#broker, this.#log);
    this.#leaseMs = options.leaseMs ?? LEASE_MS;
    this.#pollMs = options.pollMs ?? POLL_MS;
    this.#keeperMode = options.leaseKeeper ?? "auto";
    for (const def of rt.system.all(TASKS)) {
      if (options.types && !options.types.includes(def.name)) continue;
      this.#defs.set(def.name, def);
      this.#limits.set(def.name, options.concurrency ?? def.concurrency);
      this.#busy.set(def.name, 0);
      this.#held.set(def.name, []);
      this.#runMs.set(def.name, Infinity);
      this.#more.set(def.name, new Set());
      this.#turn.set(def.name, 0);
      this.#typeMetrics.set(def.name, {
        inProgress: this.#metrics.transitions.child(def.name, "in_progress"),
        running: this.#metrics.running.child(def.name),
        startDelay: this.#metrics.startDelaySeconds.child(def.name),
      });
    }
  }

  /** This worker's id, recorded on the tasks it runs. */
  get id(): string {
    return this.#id;
  }

  /** How many handlers run now. */
  get running(): number {
    let n = 0;
    for (const busy of this.#busy.values()) n += busy;
    return n;
  }

  async start(): Promise<void> {
    const keys = taskKeys(this.#rt.config.keyPrefix);
    if (this.#defs.size === 0) this.#log.warn("no task types to run");
    // Not awaited: with the store down, start-up (and /healthz) must not wait for it. Until the
    // subscriptions are up, the fallback poll and the lease renewals' cancel flags stand in.
    const ready = this.#subscribeUntilDone(keys.readyChannel, (message) => {
      const colon = message.lastIndexOf(":");
      const type = message.slice(0, colon);
      const shard = Number(message.slice(colon + 1));
      const more = this.#more.get(type);
      if (!more || !(shard >= 0 && shard < TASK_SHARDS)) return;
      this.#notified.add(message);
      more.add(shard);
      this.#poke();
    });
    const cancel = this.#subscribeUntilDone(
      keys.cancelChannel,
      (refcode) => this.#abort(refcode, "cancel"),
    );
    this.#subscribed = Promise.all([ready, cancel]).then(() => {});
    this.#keeper = await startLeaseKeeper(
      this.#rt,
      this.#broker,
      this.#leaseMs,
      {
        onLost: (leases) => this.#lost(leases),
        onCancel: (leases) => leases.forEach(([refcode]) => this.#abort(refcode, "cancel")),
      },
      this.#log,
      {
        mode: this.#keeperMode,
        // Open runs are the running handlers plus those whose outcome awaits its batched write.
        slots: 4096 + 4 * [...this.#limits.values()].reduce((a, b) => a + b, 0),
      },
    );
    this.#sweeper = setInterval(() => this.#sweepTimeouts(), TIMEOUT_SWEEP_MS);
    this.#loop = this.#claimLoop();
    this.#log.info("task worker started", {
      types: [...this.#defs.keys()],
      lease_ms: this.#leaseMs,
      lease_keeper: this.#keeper.mode,
    });
  }

  /**
   * Settles once the ready and cancel subscriptions of a started worker are up (or it stopped
   * first). `start()` does not wait for them (see there); until they are, a new task waits for
   * the fallback poll, so a test of the notifications waits for this instead of a guessed time.
   *
   * @returns settles when subscribed
   */
  subscribed(): Promise<void> {
    return this.#subscribed;
  }

  /**
   * Settles once no run is open and no outcome write is under way: every run taken so far has
   * its outcome written (or given up). Tests check a worker's effects after it instead of
   * waiting a guessed time. A handler that ignores its cancel may still be running then: its
   * run was closed without it (see {@link TaskWorker.running}).
   *
   * @returns settles when idle
   */
  async idle(): Promise<void> {
    await this.#drained();
    await this.#finisher.drain();
  }

  async #subscribeUntilDone(channel: string, onMessage: (message: string) => void): Promise<void> {
    for (let attempt = 0; !this.#stopping; attempt++) {
      try {
        const unsubscribe = await this.#rt.store.subscribe(channel, onMessage);
        if (this.#stopping) await unsubscribe();
        else this.#unsubscribe.push(unsubscribe);
        return;
      } catch (err) {
        if (attempt === 0) this.#log.warn("subscribing failed; retrying", { channel, error: err });
        await delay(backoff(attempt + 1, SUBSCRIBE_BACKOFF));
      }
    }
  }

  check(): Promise<Check> {
    return Promise.resolve(
      this.#lastError ? { ok: false, detail: `claiming fails: ${this.#lastError}` } : { ok: true },
    );
  }

  #poke(): void {
    this.#dirty = true;
    this.#wake?.();
  }

  #idle(ms: number): Promise<void> {
    if (this.#dirty || this.#stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = Number.isFinite(ms) ? setTimeout(() => done(), ms) : undefined;
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      this.#wake = done;
    });
  }

  /**
   * How many more tasks of a type this worker takes now: its free slots, plus room to claim
   * ahead when the type has a backlog and short runs (see {@link PREFETCH_BELOW_MS}).
   */
  #room(type: string): number {
    const limit = this.#limits.get(type)!;
    const ahead = this.#more.get(type)!.size > 0 && this.#runMs.get(type)! < PREFETCH_BELOW_MS
      ? limit
      : 0;
    return limit + ahead - this.#busy.get(type)! - this.#held.get(type)!.length;
  }

  /**
   * The next round of claims: per shard to visit, `[type, how many]` for every type (starting at
   * a rotating type). Each type with room asks its room of one of its shards with work, the next
   * in turn; a shard whose scheduled tasks are due, or every shard in a sweep, is visited too.
   * In a shard visited, every other type is asked for none: it costs the script one empty pop,
   * and it moves their due retries and learns whether their queue has work and when the next
   * retry is due.
   */
  #round(): Map<number, [string, number][]> {
    const types = [...this.#defs.keys()];
    const order = types.map((_, i) => types[(i + this.#rotate) % types.length]);
    this.#rotate++;
    const asked = new Map<number, Map<string, number>>();
    const visit = (shard: number) => {
      let wants = asked.get(shard);
      if (!wants) asked.set(shard, wants = new Map());
      return wants;
    };
    const now = Date.now();
    for (const [shard, at] of this.#due) if (at <= now) visit(shard);
    if (this.#sweep || now - this.#sweptAt >= this.#pollMs) {
      this.#sweptAt = now;
      for (let shard = 0; shard < TASK_SHARDS; shard++) visit(shard);
    }
    for (const type of order) {
      const room = this.#room(type);
      if (room <= 0) continue;
      const more = [...this.#more.get(type)!].sort((a, b) => a - b);
      // No known work: a shard visited anyway may have some.
      const from = more.length ? more : [...asked.keys()].sort((a, b) => a - b);
      if (from.length === 0) continue;
      const turn = this.#turn.get(type)!;
      this.#turn.set(type, turn + 1);
      visit(from[turn % from.length]).set(type, Math.min(room, CLAIM_BATCH));
    }
    const out = new Map<number, [string, number][]>();
    for (const [shard, wants] of asked) {
      out.set(shard, order.map((type) => [type, wants.get(type) ?? 0]));
    }
    return out;
  }

  /** Whether some type with room may have ready tasks, or a shard's retries are due. */
  #claimable(): boolean {
    for (const [type, more] of this.#more) if (more.size && this.#room(type) > 0) return true;
    const now = Date.now();
    for (const at of this.#due.values()) if (at <= now) return true;
    return false;
  }

  /** When the next shard's scheduled tasks are due, in ms from now (Infinity: none). */
  #nextDue(): number {
    let next = Infinity;
    for (const at of this.#due.values()) next = Math.min(next, at);
    return Math.max(0, next - Date.now());
  }

  async #claimLoop(): Promise<void> {
    let failures = 0;
    while (!this.#stopping) {
      const round = this.#round();
      if (round.size === 0) {
        // Every type is at its limit or knows of no work: a freed slot of a type with work, a
        // notification (which marks its shard as having work), a due retry or the fallback poll
        // wakes the loop.
        const pollAt = Date.now() + this.#pollMs;
        await this.#idle(Math.min(this.#pollMs, this.#nextDue()));
        if (!this.#dirty && Date.now() >= pollAt) this.#sweep = true;
        this.#dirty = false;
        continue;
      }
      this.#dirty = false;
      this.#sweep = false;
      this.#notified.clear();
      const sentAt = Date.now();
      let claimed: [number, Awaited<ReturnType<TaskBroker["claim"]>>][];
      try {
        const seq = ++this.#seq;
        claimed = await Promise.all(
          [...round].map(async ([shard, wants]) =>
            [
              shard,
              await this.#broker.claim(
                shard,
                wants,
                this.#leaseMs,
                `${this.#id}.${seq}.${shard}`,
                this.#id,
              ),
            ] as [number, Awaited<ReturnType<TaskBroker["claim"]>>]
          ),
        );
        if (failures > 0) this.#log.info("claiming works again");
        failures = 0;
        this.#lastError = "";
      } catch (err) {
        // Claims of the round that went through are lost to this worker: their leases expire
        // and the recoverer hands them to a worker again.
        if (failures++ === 0) this.#log.warn("claiming tasks failed", { error: err });
        this.#lastError = _message(err);
        this.#sweep = true;
        await this.#idle(backoff(failures, CLAIM_BACKOFF));
        continue;
      }
      const tasks = claimed.flatMap(([, c]) => c.tasks);
      if (this.#stopping) {
        // Claimed while stop() began: hand them straight back.
        await Promise.all(
          tasks.map((task) =>
            this.#finisher.write({
              refcode: task.refcode,
              type: task.type,
              token: task.token,
              outcome: { kind: "release" },
            })
          ),
        );
        break;
      }
      // Every lease is tracked before any handler runs: one may block the thread at once.
      const runs = tasks.map((task) => this.#prepare(task));
      // A shard whose list of a type the claim left non-empty has more; one whose list it
      // emptied has none, unless a notification named it while the claim was under way.
      for (const [shard, { more, nextDueMs }] of claimed) {
        for (const [type] of round.get(shard)!) {
          const set = this.#more.get(type)!;
          if (more.includes(type) || this.#notified.has(`${type}:${shard}`)) set.add(shard);
          else set.delete(shard);
        }
        if (nextDueMs === null) this.#due.delete(shard);
        else this.#due.set(shard, sentAt + nextDueMs);
      }
      for (const run of runs) {
        const type = run.def.name;
        if (this.#busy.get(type)! < this.#limits.get(type)!) this.#invoke(run);
        else {
          run.heldAt = Date.now();
          this.#held.get(type)!.push(run);
        }
      }
      if (this.#dirty || this.#claimable()) continue;
      const pollAt = Date.now() + this.#pollMs;
      await this.#idle(Math.min(this.#pollMs, this.#nextDue()));
      if (!this.#dirty && Date.now() >= pollAt) this.#sweep = true;
    }
  }

  /** Books a claimed task: metrics, lease. */
  #prepare(task: ClaimedTask): _Run {
    const def = this.#defs.get(task.type)!;
    this.#typeMetrics.get(def.name)!.inProgress.inc();
    // A run claimed ahead may wait for a slot up to one run's time before its own starts.
    this.#keeper!.track(
      task.refcode,
      task.token,
      Date.now() + 2 * def.timeoutMs + 2 * ABORT_GRACE_MS,
    );
    const run: _Run = {
      task,
      def,
      deadline: Infinity,
      started: false,
      closed: false,
      startedAt: 0,
      progress: {},
    };
    this.#runs.set(task.refcode, run);
    return run;
  }

  /** Starts the next held run of a type whose slot just freed, if any. */
  #startHeld(type: string): void {
    const held = this.#held.get(type)!;
    while (held.length && this.#busy.get(type)! < this.#limits.get(type)!) {
      const run = held.shift()!;
      if (!run.closed) this.#invoke(run);
    }
  }

  /** Takes a run that never started out of its type's buffer. */
  #unhold(run: _Run): void {
    const held = this.#held.get(run.def.name)!;
    const i = held.indexOf(run);
    if (i >= 0) held.splice(i, 1);
  }

  /** Runs the handler of a prepared run and closes the run with its outcome. */
  #invoke(run: _Run): void {
    const { task, def } = run;
    const type = def.name;
    this.#busy.set(type, this.#busy.get(type)! + 1);
    const metrics = this.#typeMetrics.get(type)!;
    metrics.running.inc();
    metrics.startDelay.observe(Math.max(0, Date.now() - task.readyAt) / 1000);
    run.started = true;
    run.deadline = Date.now() + def.timeoutMs;
    run.startedAt = performance.now();
    let log: Logger | undefined;
    const parent = this.#log;
    const ctx: TaskContext = {
      refcode: task.refcode,
      attempt: task.attempt,
      get signal() {
        if (!run.controller) {
          run.controller = new AbortController();
          if (run.reason) run.controller.abort(run.reason);
        }
        return run.controller.signal;
      },
      get log() {
        return log ??= parent.child({ task: type, refcode: task.refcode, attempt: task.attempt });
      },
      rt: this.#rt,
      progress: (fraction) => this.#progress(run, fraction),
      enqueue: (next, input, options) => enqueueTask(this.#rt, next, input, options),
    };
    const handler = (async () => {
      const parsed = safeParse(def.input, JSON.parse(task.input));
      if (!parsed.success) {
        throw new NonRetryableError(
          `The stored input no longer fits the schema: ${
            parsed.issues.map((i) => i.message).join("; ")
          }`,
        );
      }
      return await def.handler(parsed.output, ctx);
    })();
    // Not awaiting the outcome's write: the slot is for handlers, the write is batched apart.
    handler.then(
      (result) => void this.#close(run, { kind: "ok", result: JSON.stringify(result ?? null) }),
      (err) => void this.#close(run, this.#failure(run, err)),
    ).finally(() => {
      // The slot frees when the handler returns, even if its run was closed earlier.
      clearTimeout(run.grace);
      this.#busy.set(type, this.#busy.get(type)! - 1);
      metrics.running.dec();
      const ms = performance.now() - run.startedAt;
      const mean = this.#runMs.get(type)!;
      this.#runMs.set(type, Number.isFinite(mean) ? mean + (ms - mean) / 8 : ms);
      if (!this.#stopping) this.#startHeld(type);
      if (this.#more.get(type)!.size || this.#held.get(type)!.length) this.#poke();
    });
  }

  #failure(run: _Run, err: unknown): Outcome {
    if (run.cause === "shutdown") return { kind: "release" };
    if (run.cause === "timeout") {
      const error = `Timed out after ${run.def.timeoutMs} ms`;
      return { kind: "retry", error, delayMs: run.def.backoff(run.task.attempt) };
    }
    if (err instanceof NonRetryableError) return { kind: "fail", error: err.message };
    return { kind: "retry", error: _message(err), delayMs: run.def.backoff(run.task.attempt) };
  }

  #abort(refcode: string, cause: _Cause): void {
    const run = this.#runs.get(refcode);
    if (run) this.#abortRun(run, cause);
  }

  /** Fires the run's signal; a handler that ignores it has its run closed after a grace. */
  #abortRun(run: _Run, cause: _Cause): void {
    if (run.closed || run.cause) return;
    run.cause = cause;
    const reason = cause === "timeout"
      ? new DOMException(`Task timed out after ${run.def.timeoutMs} ms`, "TimeoutError")
      : new DOMException(
        cause === "cancel"
          ? "Task cancelled"
          : cause === "lost"
          ? "Task lease lost: another worker may run it"
          : "Worker shutting down: task handed back",
        "AbortError",
      );
    run.reason = reason;
    if (!run.started) {
      // Held, never started: nothing to stop; close it now (a cancel ends it cancelled, a
      // shutdown hands it back).
      this.#unhold(run);
      if (cause !== "lost") void this.#close(run, this.#failure(run, reason));
      this.#poke();
      return;
    }
    run.controller?.abort(reason);
    if (cause === "cancel" || cause === "timeout") {
      run.grace = setTimeout(() => this.#close(run, this.#failure(run, reason)), ABORT_GRACE_MS);
    }
  }

  #sweepTimeouts(): void {
    const now = Date.now();
    for (const [type, held] of this.#held) {
      if (held.length === 0 || now - held[0].heldAt! < HOLD_MAX_MS) continue;
      this.#runMs.set(type, Infinity);
      for (const run of [...held]) {
        if (now - run.heldAt! >= HOLD_MAX_MS) this.#abortRun(run, "shutdown");
      }
    }
    for (const run of this.#runs.values()) {
      if (run.started && !run.closed && !run.cause && now >= run.deadline) {
        this.#abortRun(run, "timeout");
      }
    }
  }

  #lost(leases: Lease[]): void {
    for (const [refcode, token] of leases) {
      const run = this.#runs.get(refcode);
      if (!run || run.task.token !== token || run.closed) continue;
      this.#log.warn("task lease lost; its result will be discarded", { refcode });
      this.#abortRun(run, "lost");
      run.closed = true;
      this.#forget(run);
    }
  }

  #forget(run: _Run): void {
    clearTimeout(run.progress.timer);
    this.#keeper?.untrack(run.task.refcode, run.task.token);
    if (this.#runs.get(run.task.refcode) === run) this.#runs.delete(run.task.refcode);
    if (this.#runs.size === 0) this.#drainWaiters.splice(0).forEach((resolve) => resolve());
  }

  #progress(run: _Run, fraction: number): void {
    if (run.closed || !Number.isFinite(fraction)) return;
    const p = run.progress;
    p.value = Math.min(1, Math.max(0, fraction));
    if (p.timer) return;
    const flush = () => {
      p.timer = undefined;
      if (run.closed || p.value === p.written) return;
      p.written = p.value;
      this.#broker.progress(run.task.refcode, run.task.token, p.value!).catch((err) =>
        this.#log.debug("progress not written", { refcode: run.task.refcode, error: err })
      );
      p.timer = setTimeout(flush, PROGRESS_EVERY_MS);
    };
    flush();
  }

  #close(run: _Run, outcome: Outcome): Promise<void> {
    if (run.closed) return run.written ?? Promise.resolve();
    run.closed = true;
    clearTimeout(run.progress.timer);
    const { refcode, token, type } = run.task;
    run.written = this.#finisher.write({ refcode, type, token, outcome }).then((status) => {
      this.#forget(run);
      const seconds = (performance.now() - run.startedAt) / 1000;
      if (status === "lost" || status === "unwritten") {
        if (status === "lost") {
          this.#log.warn("task outcome discarded: its lease was lost", { refcode, task: type });
        }
        return;
      }
      const label = outcome.kind === "release" && status === "queued"
        ? "released"
        : status === "queued"
        ? "retry"
        : status;
      if (run.started) this.#metrics.runSeconds.child(type, label).observe(seconds);
      this.#metrics.transitions.child(type, status).inc();
      if (label === "retry") {
        // The claim this wakes (in the task's shard) learns when the retry is due and sleeps
        // until then.
        this.#due.set(shardIndex(refcode), Date.now());
        this.#poke();
        this.#metrics.retries.child(type).inc();
        this.#log.info("task failed; retry scheduled", {
          refcode,
          task: type,
          attempt: run.task.attempt,
          error: outcome.kind === "retry" ? outcome.error : undefined,
        });
      } else if (status === "failed") {
        this.#log.warn("task failed", {
          refcode,
          task: type,
          attempt: run.task.attempt,
          error: outcome.kind === "ok" || outcome.kind === "release" ? undefined : outcome.error,
        });
      }
    });
    return run.written;
  }

  async stop(deadline: number): Promise<void> {
    this.#stopping = true;
    this.#finisher.deadline = deadline;
    this.#wake?.();
    await this.#loop;
    // Runs claimed ahead that never started go back at once, their attempt not counted.
    for (const held of this.#held.values()) {
      for (const run of [...held]) this.#abortRun(run, "shutdown");
    }
    // Let running handlers finish until shortly before the deadline, then hand back the rest.
    const margin = Math.min(1000, Math.max(100, (deadline - Date.now()) / 10));
    await settleBy(this.#drained(), deadline - margin);
    const open = [...this.#runs.values()].filter((run) => !run.closed);
    if (open.length) {
      this.#log.info("handing back running tasks", { count: open.length });
      for (const run of open) this.#abortRun(run, "shutdown");
      // Handlers that honour the signal return at once; the others are handed back anyway.
      await settleBy(this.#drained(), Math.min(deadline - margin / 2, Date.now() + 200));
      for (const run of open) void this.#close(run, { kind: "release" });
    }
    await settleBy(this.#drained(), deadline);
    clearInterval(this.#sweeper);
    await Promise.allSettled([
      this.#keeper?.stop(),
      ...this.#unsubscribe.map((unsubscribe) => unsubscribe()),
    ]);
    this.#log.info("task worker stopped", { still_running: this.running });
  }

  /** Settles once no run is open (every outcome written or given up). */
  #drained(): Promise<void> {
    if (this.#runs.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }
}
