/**
 * @module The `parallel-worker` loop: claims chunks of active runs within each run's
 * `worker_count`, runs them on the process's warm thread pool, records results, merges the
 * last one, stops chunks of cancelled runs, and hands chunks back on shutdown.
 */
import { backoff } from "../async/backoff.ts";
import { settleBy } from "../async/deadline.ts";
import { delay } from "../async/delay.ts";
import { type Clock, systemClock } from "../async/clock.ts";
import { Loop } from "../async/loop.ts";
import { renewEvery } from "../jobs/lease.ts";
import { UnavailableError } from "../infra/store.ts";
import type { Logger } from "../log.ts";
import type { Runtime, Service } from "../runtime.ts";
import { PARALLEL_TASKS, type ParallelTask } from "./define.ts";
import { Heartbeat } from "./heartbeat.ts";
import { type ParallelMetrics, parallelMetrics } from "./metrics.ts";
import { type RunningChunk, ThreadPool } from "./pool.ts";
import { type Held, RunStore } from "./store.ts";

/** How often idle workers look for work when no message wakes them. */
export const POLL_MS = 500;
/** A refcode indexed this long ago whose run does not exist was never written: forget it. */
const ORPHAN_MS = 60_000;
/** Before the shutdown deadline, the time kept to hand chunks back and destroy the pool. */
const HAND_BACK_MS = 1_000;

/** Retries of the subscription to run events (polling finds work meanwhile). */
const SUBSCRIBE_BACKOFF = { initialMs: 250, maxMs: 5_000 };
/** Retries of an outcome write while the store is unreachable and the lease may hold. */
const PERSIST_BACKOFF = { initialMs: 100, maxMs: 1_000 };

/** Options of the processor (tests). */
export interface ProcessorOptions {
  /** Threads (default `rt.config.parallelMaxWorkers`). */
  threads?: number;
  /** Idle poll interval (default {@link POLL_MS}). */
  pollMs?: number;
  /** Heartbeat interval (default: `renewEvery` of the shortest lease). */
  heartbeatMs?: number;
  /**
   * Whose time polls and heartbeats run on (tests; the wall clock by default). Leases are on
   * the store's clock: a test moves both with one manual clock (the embedded store takes one).
   */
  clock?: Clock;
}

/** One lease this process holds: a chunk on a thread, or the merge. */
interface Active extends Held {
  refcode: string;
  taskId: string;
  running?: RunningChunk;
  /** The run ended or the lease was lost: the outcome is not written. */
  stopped: boolean;
  settled: Promise<void>;
}

const _message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** The parallel worker of one process. */
export class ParallelProcessor implements Service {
  readonly name = "parallel-worker";
  #rt: Runtime;
  #runs: RunStore;
  #log: Logger;
  #metrics: ParallelMetrics;
  #defs: Map<string, ParallelTask>;
  #threads: number;
  #clock: Clock;
  #pool: ThreadPool | undefined;
  #heartbeat: Heartbeat;
  #active = new Map<string, Active>();
  #stopping = false;
  #loop: Loop;
  #failing = false;
  #unsubscribe: (() => Promise<void>) | undefined;
  #subscribing: Promise<void> | undefined;
  #seq = 0;

  /**
   * @param rt the runtime (its system's parallel tasks are the ones this process runs)
   * @param options threads, intervals and clock
   */
  constructor(rt: Runtime, options: ProcessorOptions = {}) {
    this.#rt = rt;
    this.#clock = options.clock ?? systemClock;
    this.#runs = new RunStore(rt.store, rt.config.keyPrefix);
    this.#log = rt.log.child({ component: "parallel-worker" });
    this.#metrics = parallelMetrics(rt);
    this.#defs = new Map(rt.system.all(PARALLEL_TASKS).map((d) => [d.name, d]));
    this.#threads = options.threads ?? rt.config.parallelMaxWorkers;
    const pollMs = options.pollMs ?? POLL_MS;
    this.#loop = new Loop(async () => {
      try {
        await this.#fill();
        if (this.#failing) this.#log.info("claiming recovered");
        this.#failing = false;
      } catch (err) {
        if (!this.#failing) this.#log.warn("claiming failed", { error: _message(err) });
        this.#failing = true;
        return Math.max(pollMs, 1_000);
      }
    }, { everyMs: pollMs, immediate: true, clock: this.#clock });
    const shortestLease = Math.min(...[...this.#defs.values()].map((d) => d.leaseMs), 3_000);
    this.#heartbeat = new Heartbeat(
      this.#runs,
      { held: () => this.#held(), lost: (refcode, slots) => this.#stopRun(refcode, slots) },
      options.heartbeatMs ?? renewEvery(shortestLease),
      this.#log,
      this.#clock,
    );
  }

  /** Threads running a chunk now. */
  get busy(): number {
    return this.#pool?.busy ?? 0;
  }

  start(): Promise<void> {
    this.#pool = new ThreadPool(
      this.#threads,
      (err) => this.#log.error("worker thread failed", { error: _message(err) }),
    );
    this.#metrics.threads.set(this.#threads);
    this.#subscribing = this.#subscribe();
    this.#heartbeat.start();
    this.#loop.start();
    this.#log.info("parallel worker started", {
      threads: this.#threads,
      tasks: [...this.#defs.keys()],
    });
    return Promise.resolve();
  }

  check(): Promise<{ ok: boolean; detail?: string }> {
    return Promise.resolve({
      ok: this.#pool !== undefined && !this.#stopping,
      detail: `${this.busy}/${this.#threads} threads busy`,
    });
  }

  async stop(deadline: number): Promise<void> {
    this.#stopping = true;
    await this.#loop.stop();
    // Chunks in flight may finish until shortly before the deadline; the rest go back to
    // the queue for another process, and their threads stop.
    const handBackAt = deadline - Math.min(HAND_BACK_MS, Math.max(0, deadline - Date.now()) / 2);
    await settleBy(
      Promise.allSettled([...this.#active.values()].map((a) => a.settled)),
      handBackAt,
    );
    const left = this.#held();
    const taskOf = new Map([...this.#active.values()].map((a) => [a.refcode, a.taskId]));
    for (const a of this.#active.values()) {
      a.stopped = true;
      a.running?.stop();
    }
    await Promise.all([...left].map(async ([refcode, held]) => {
      try {
        const n = await this.#runs.release(refcode, held);
        const taskId = taskOf.get(refcode);
        if (n > 0 && taskId) await this.#runs.announce(taskId, refcode);
        this.#log.info("chunks handed back", { refcode, chunks: n });
      } catch (err) {
        this.#log.warn("hand-back failed; the leases will expire", {
          refcode,
          error: _message(err),
        });
      }
    }));
    await this.#heartbeat.stop();
    // Subscribing may hang while the store is down; it must not hold the shutdown.
    await settleBy(this.#subscribing, Math.min(deadline, Date.now() + 1_000));
    await settleBy(this.#unsubscribe?.(), Math.min(deadline, Date.now() + 1_000));
    await settleBy(this.#pool?.destroy(), deadline);
    this.#metrics.threadsBusy.set(0);
  }

  async #subscribe(): Promise<void> {
    for (let attempt = 1; !this.#stopping; attempt++) {
      try {
        this.#unsubscribe = await this.#rt.store.subscribe(
          this.#runs.channel,
          (m) => this.#onEvent(m),
        );
        return;
      } catch (err) {
        // Polling finds work meanwhile; heartbeats catch cancels within a lease.
        this.#log.warn("cannot subscribe to parallel events yet", { error: _message(err) });
        await delay(backoff(attempt, SUBSCRIBE_BACKOFF));
      }
    }
  }

  #onEvent(message: string): void {
    const [type, a] = message.split(" ");
    if (type === "run") this.#wake();
    else if (type === "stop") this.#stopRun(a, "all");
  }

  #wake(): void {
    this.#loop.wake();
  }

  #token(): string {
    return `${this.#rt.instanceId}:${++this.#seq}`;
  }

  #free(): number {
    return this.#stopping
      ? 0
      : this.#threads - [...this.#active.values()].filter((a) => a.running).length;
  }

  /** Claims chunks, oldest run first, until the threads are busy or nothing is claimable. */
  async #fill(): Promise<void> {
    for (const def of this.#defs.values()) {
      if (this.#free() <= 0) return;
      for (const { refcode, createdMs } of await this.#runs.active(def.name)) {
        while (this.#free() > 0) {
          const token = this.#token();
          const claim = await this.#runs.claim(refcode, token);
          if (claim.kind === "chunk") this.#launch(def, refcode, claim.index, claim.chunk, token);
          else if (claim.kind === "merge") this.#merge(def, refcode, token);
          else {
            if (
              claim.kind === "gone" &&
              (claim.status !== "" || createdMs < this.#clock.now() - ORPHAN_MS)
            ) {
              await this.#runs.forget(def.name, refcode);
            }
            break;
          }
        }
        if (this.#free() <= 0) return;
      }
    }
  }

  #track(a: Omit<Active, "settled">, work: (a: Active) => Promise<void>): void {
    const active = a as Active;
    this.#active.set(a.token, active);
    active.settled = work(active).catch((err) => {
      // The lease runs out and another claim redoes this work.
      this.#log.warn("parallel work not recorded", { refcode: a.refcode, error: _message(err) });
    }).finally(() => {
      this.#active.delete(a.token);
      this.#metrics.threadsBusy.set(this.busy);
      this.#wake();
    });
  }

  #launch(def: ParallelTask, refcode: string, index: number, chunk: unknown, token: string): void {
    const running = this.#pool!.start(def.worker, chunk);
    this.#metrics.threadsBusy.set(this.busy);
    const started = performance.now();
    const onThread = running.result.finally(() =>
      this.#metrics.chunkSeconds.observe(
        { task_id: def.name },
        (performance.now() - started) / 1000,
      )
    );
    const base = { refcode, taskId: def.name, slot: String(index), token, running, stopped: false };
    this.#track(base, async (a) => {
      let outcome = "completed";
      try {
        const result = await onThread;
        if (a.stopped) {
          outcome = "aborted";
          return;
        }
        // The thread's next chunk of this run is claimed with the result, in one round trip.
        const next = this.#stopping ? undefined : this.#token();
        const recorded = await this.#persist(
          a,
          () => this.#runs.complete(refcode, index, token, result, next),
        );
        if (recorded === undefined || recorded.outcome === "dropped") outcome = "dropped";
        else if (recorded.outcome === "last") this.#merge(def, refcode, token);
        else if (recorded.next?.kind === "chunk") {
          this.#launch(def, refcode, recorded.next.index, recorded.next.chunk, next!);
        } else if (recorded.next?.kind === "merge") this.#merge(def, refcode, next!);
      } catch (err) {
        if (a.stopped) {
          outcome = "aborted";
          return;
        }
        outcome = "failed";
        const error = `chunk ${index} failed: ${_message(err)}`;
        this.#log.warn("chunk failed", { refcode, task_id: def.name, chunk: index, error });
        await this.#persist(a, () => this.#end(def, refcode, a, { status: "failed", error }));
      } finally {
        this.#metrics.chunks.inc({ task_id: def.name, outcome });
      }
    });
  }

  /** Writes an outcome, retrying while the store is unreachable and the lease may still hold. */
  async #persist<T>(a: Active, write: () => Promise<T>): Promise<T | undefined> {
    const def = this.#defs.get(a.taskId)!;
    const giveUpAt = Date.now() + def.leaseMs;
    for (let attempt = 1;; attempt++) {
      const wait = backoff(attempt, PERSIST_BACKOFF);
      try {
        return await write();
      } catch (err) {
        if (!(err instanceof UnavailableError) || Date.now() + wait > giveUpAt || a.stopped) {
          this.#log.warn("outcome not recorded; the chunk will run again", {
            refcode: a.refcode,
            slot: a.slot,
            error: _message(err),
          });
          return undefined;
        }
        await delay(wait);
      }
    }
  }

  /** Merges the chunks' results under the merge lease and ends the run. */
  #merge(def: ParallelTask, refcode: string, token: string): void {
    const base = { refcode, taskId: def.name, slot: "merge", token, stopped: false };
    this.#track(base, async (a) => {
      const results = await this.#runs.results(refcode);
      if (!results) return;
      let outcome: { status: "completed"; result: unknown } | { status: "failed"; error: string };
      try {
        outcome = { status: "completed", result: await def.merge(results) };
      } catch (err) {
        outcome = { status: "failed", error: `merge failed: ${_message(err)}` };
      }
      await this.#persist(a, () => this.#end(def, refcode, a, outcome));
    });
  }

  async #end(
    def: ParallelTask,
    refcode: string,
    held: Held,
    outcome: { status: "completed"; result: unknown } | { status: "failed"; error: string },
  ): Promise<void> {
    if (!(await this.#runs.end(refcode, held, outcome))) return;
    const run = await this.#runs.get(refcode);
    if (run) {
      const seconds = (Date.parse(run.finished_at!) - Date.parse(run.created_at)) / 1000;
      this.#metrics.runSeconds.observe({ task_id: def.name, status: outcome.status }, seconds);
    }
    await this.#runs.forget(def.name, refcode);
    this.#log.info("parallel run ended", { refcode, task_id: def.name, status: outcome.status });
  }

  #held(): Map<string, Held[]> {
    const out = new Map<string, Held[]>();
    for (const a of this.#active.values()) {
      if (a.stopped) continue;
      const list = out.get(a.refcode) ?? [];
      list.push({ slot: a.slot, token: a.token });
      out.set(a.refcode, list);
    }
    return out;
  }

  /** Stops this process's chunks of a run: it ended, or these leases are no longer ours. */
  #stopRun(refcode: string, slots: readonly string[] | "all"): void {
    for (const a of this.#active.values()) {
      if (a.refcode !== refcode || a.stopped) continue;
      if (slots !== "all" && !slots.includes(a.slot)) continue;
      a.stopped = true;
      a.running?.stop();
    }
  }
}

/**
 * The services of the `parallel-worker` role.
 *
 * @param rt the runtime
 * @returns the processor
 */
export function parallelWorkerRole(rt: Runtime): Service[] {
  return [new ParallelProcessor(rt)];
}
