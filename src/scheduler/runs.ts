/**
 * @module One run of a schedule: claim and record it, run its action under a lease, record how
 * it ended; and, at shutdown, wait for the runs in flight until the deadline.
 */
import { settleBy } from "../async/deadline.ts";
import type { TaskDefinition } from "../tasks/define.ts";
import type { Runtime } from "../runtime.ts";
import type { Logger } from "../log.ts";
import type { Clock } from "../async/clock.ts";
import type { ScheduleContext, ScheduleDefinition, Trigger } from "./define.ts";
import type { SchedulerMetrics } from "./metrics.ts";
import type { BeginOutcome, RunRecord, ScheduleStore } from "./store.ts";
import { runAction } from "./actions.ts";

/** Enqueues an async task and returns its refcode (the async-task engine's `enqueueTask`). */
export type EnqueueFn = (
  rt: Runtime,
  type: string | TaskDefinition,
  input: unknown,
  options: { idempotencyKey?: string },
) => Promise<string>;

/** What `Runs.begin` starts. */
export interface RunRequest {
  tick: number;
  trigger: Trigger;
  /** Claim the tick first (live ticks); false when the caller already owns it. */
  claim: boolean;
  /** An existing record's id (manual runs). */
  id?: string;
}

/** What `Runs.begin` did. */
export interface RunStarted {
  outcome: BeginOutcome;
  /** The schedule's claim mark before this claim (null: first claim ever, or no claim). */
  previous: number | null;
  /**
   * Settles when the run has ended and is recorded (at once unless `running`). `busy`: a
   * catch-up run found another run going and did not start; try again later.
   */
  done: Promise<void>;
}

/**
 * Fault injection for tests: `afterClaim` runs once a run is claimed and recorded, before its
 * action starts; a hook that never returns (or kills the process) is a replica dying there.
 */
export interface RunFaults {
  afterClaim?(schedule: string, runId: string): Promise<void> | void;
}

interface _InFlight {
  def: ScheduleDefinition;
  id: string;
  controller: AbortController;
  done: Promise<void>;
}

/**
 * A new run id: the tick (sortable) and 64 random bits.
 *
 * @param tick epoch ms
 * @returns e.g. `1764201600000-9f86d081884c7d65`
 */
export function newRunId(tick: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return `${tick}-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Starts and tracks the runs of one scheduler. */
export class Runs {
  #rt: Runtime;
  #store: ScheduleStore;
  #clock: Clock;
  #metrics: SchedulerMetrics;
  #log: Logger;
  #replica: string;
  #leaseMs: number;
  #enqueue: EnqueueFn;
  #faults: RunFaults;
  #inFlight = new Map<string, _InFlight>();
  #closed = false;

  /**
   * @param deps runtime, store, clock, metrics, this replica's id, lease, enqueue function,
   *   fault injection (tests)
   */
  constructor(deps: {
    rt: Runtime;
    store: ScheduleStore;
    clock: Clock;
    metrics: SchedulerMetrics;
    log: Logger;
    replica: string;
    leaseMs: number;
    enqueue: EnqueueFn;
    faults?: RunFaults;
  }) {
    this.#rt = deps.rt;
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#metrics = deps.metrics;
    this.#log = deps.log;
    this.#replica = deps.replica;
    this.#leaseMs = deps.leaseMs;
    this.#enqueue = deps.enqueue;
    this.#faults = deps.faults ?? {};
  }

  /** This replica's name in run records. */
  get replica(): string {
    return this.#replica;
  }

  /** The run lease, ms. */
  get leaseMs(): number {
    return this.#leaseMs;
  }

  /** Whether a run is going here. */
  has(id: string): boolean {
    return this.#inFlight.has(id);
  }

  /** How many runs are going. */
  get running(): number {
    return this.#inFlight.size;
  }

  /**
   * Claims (when asked), records and starts one run.
   *
   * @param def the schedule
   * @param req the tick and why it runs
   * @returns the outcome; `done` settles once the run is recorded as ended
   * @throws {UnavailableError} when the store is down (nothing was claimed)
   */
  async begin(def: ScheduleDefinition, req: RunRequest): Promise<RunStarted> {
    if (this.#closed) throw new Error("The scheduler is stopping");
    const id = req.id ?? newRunId(req.tick);
    const startedAt = this.#clock.now();
    const { outcome, previous } = await this.#store.begin(def.name, {
      id,
      claimUpTo: req.claim ? req.tick : null,
      lock: req.trigger === "manual"
        ? "force"
        : req.trigger === "catch-up" && def.overlap === "skip"
        ? "wait"
        : def.overlap,
      leaseMs: this.#leaseMs,
      now: startedAt,
      record: {
        trigger: req.trigger,
        scheduledAt: req.tick,
        startedAt,
        finishedAt: null,
        status: "running",
        replica: this.#replica,
      },
    });
    const claimed = performance.now();
    const labels = { schedule: def.name };
    if (outcome === "lost") this.#metrics.claimsLost.inc(labels);
    if (outcome === "skipped") {
      this.#metrics.runs.inc({ ...labels, status: "skipped" });
      this.#log.info("run skipped: the previous run is still going", {
        schedule: def.name,
        scheduled_at: new Date(req.tick).toISOString(),
      });
    }
    if (outcome !== "running") return { outcome, previous, done: Promise.resolve() };
    if (req.trigger === "schedule") {
      this.#metrics.lateness.observe(labels, Math.max(0, this.#clock.now() - req.tick) / 1000);
    }
    await this.#faults.afterClaim?.(def.name, id);
    return { outcome, previous, done: this.#start(def, id, req, startedAt, claimed) };
  }

  /**
   * Runs a run this replica took over (its claimer died): the same record and run id, so an
   * `enqueue` action's idempotency key is the same as the first attempt's.
   *
   * @param def the schedule
   * @param run the record, now this replica's
   * @param startedAt when it was taken over
   * @returns settles once the run is recorded as ended
   */
  resume(def: ScheduleDefinition, run: RunRecord, startedAt: number): Promise<void> {
    if (this.#closed) throw new Error("The scheduler is stopping");
    this.#metrics.takeovers.inc({ schedule: def.name });
    this.#log.warn("run taken over from a replica that stopped", {
      schedule: def.name,
      run: run.id,
      scheduled_at: new Date(run.scheduledAt).toISOString(),
      from: run.replica,
    });
    return this.#start(
      def,
      run.id,
      {
        tick: run.scheduledAt,
        trigger: run.trigger,
        claim: false,
      },
      startedAt,
      performance.now(),
    );
  }

  /** `claimed`: when the lease was last taken (performance.now()). */
  #start(
    def: ScheduleDefinition,
    id: string,
    req: RunRequest,
    startedAt: number,
    claimed: number,
  ): Promise<void> {
    const controller = new AbortController();
    const run: _InFlight = { def, id, controller, done: Promise.resolve() };
    this.#inFlight.set(id, run);
    run.done = this.#execute(def, id, req, startedAt, controller, claimed)
      .finally(() => this.#inFlight.delete(id));
    return run.done;
  }

  async #execute(
    def: ScheduleDefinition,
    id: string,
    req: RunRequest,
    startedAt: number,
    controller: AbortController,
    claimed: number,
  ): Promise<void> {
    const signal = controller.signal;
    const log = this.#log.child({ schedule: def.name, run: id });
    let refcode: string | undefined;
    const ctx: ScheduleContext = {
      name: def.name,
      scheduledAt: new Date(req.tick),
      trigger: req.trigger,
      runId: id,
      signal,
      rt: this.#rt,
      log,
      enqueue: async (type, input) => {
        const code = await this.#enqueue(this.#rt, type, input, {
          idempotencyKey: `schedule:${def.name}:${id}`,
        });
        refcode ??= code;
        return code;
      },
    };
    const renew = setInterval(() => {
      this.#store.renew(def.name, id, this.#leaseMs, this.#replica).then((held) => {
        // Another replica took the run over (this one stalled past its lease): stop, record
        // nothing; the run is theirs.
        if (!held && !signal.aborted) {
          log.warn("run lease lost: another replica took the run over");
          controller.abort(new Error("The run was taken over by another replica"));
        }
      }).catch((err) => log.warn("run lease not renewed", { error: err }));
    }, Math.max(10, Math.floor(this.#leaseMs / 3)));
    let error: string | undefined;
    try {
      // A replica that stalled between its claim and here (half a lease: a takeover needs a
      // whole one) may have lost the run to a takeover: it checks before starting the action.
      const stalled = performance.now() - claimed > this.#leaseMs / 2;
      if (stalled && !(await this.#store.renew(def.name, id, this.#leaseMs, this.#replica))) {
        controller.abort(new Error("The run was taken over by another replica"));
        log.warn("run not started: another replica took it over");
        return;
      }
      await runAction(def.action, ctx);
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    } finally {
      clearInterval(renew);
    }
    if (signal.aborted) return; // recorded by drain() at the deadline, or taken over
    const finishedAt = this.#clock.now();
    const status = error === undefined ? "completed" : "failed";
    this.#metrics.runs.inc({ schedule: def.name, status });
    this.#metrics.duration.observe(
      { schedule: def.name },
      Math.max(0, finishedAt - startedAt) / 1000,
    );
    if (error !== undefined) log.warn("run failed", { error });
    try {
      await this.#store.finish(def.name, id, this.#replica, {
        status,
        finishedAt,
        refcode,
        error,
      });
    } catch (err) {
      log.error("run end not recorded", { status, error: err });
    }
  }

  /** Resolves when no run is going. */
  async idle(): Promise<void> {
    while (this.#inFlight.size) {
      await Promise.allSettled([...this.#inFlight.values()].map((r) => r.done));
    }
  }

  /**
   * Waits for the runs in flight until `deadline`; those still going then are aborted and
   * recorded `failed`.
   *
   * @param deadline epoch ms (wall clock, not the scheduler's clock)
   */
  async drain(deadline: number): Promise<void> {
    this.#closed = true;
    await settleBy(this.idle(), deadline);
    const left = [...this.#inFlight.values()];
    await Promise.allSettled(left.map(async (run) => {
      run.controller.abort(new Error("The scheduler is stopping"));
      this.#metrics.runs.inc({ schedule: run.def.name, status: "failed" });
      await this.#store.finish(run.def.name, run.id, this.#replica, {
        status: "failed",
        finishedAt: this.#clock.now(),
        error: "The scheduler stopped before the run finished",
      });
    }));
  }
}
