/**
 * @module Keeps the leases of running tasks alive, so other workers do not take them back.
 *
 * Why a thread: JavaScript renews leases from the event loop, and a handler that blocks the loop
 * (a long synchronous computation) would stop its own renewals; another process's recoverer
 * would then take the task back and run it twice. On Redis, the renewals therefore run in a
 * Web Worker with its own connection (`lease-thread.ts`), which keeps renewing whatever the main
 * thread does. It stops renewing a run after the run's hard deadline (its timeout plus a grace),
 * so a handler stuck for ever still loses its task, once. The embedded store lives inside the
 * process, so there the renewals run on the event loop ({@link LoopLeaseKeeper}) and the
 * recoverer, blocked by the same loop, skips a pass after a stall (see `recoverer.ts`).
 *
 * Either way a run that lost its lease is told (`onLost`) and its late result is refused by the
 * lease token check in `finish`.
 */
import { deadline, settleBy } from "../async/deadline.ts";
import { LeaseRenewer } from "../jobs/lease.ts";
import { redisOptions, type Runtime } from "../runtime.ts";
import type { Logger } from "../log.ts";
import type { TaskBroker } from "./broker.ts";
import { LeaseTable, type TableEntry } from "./lease-table.ts";
import {
  type FromThread,
  type Lease,
  renewEvery,
  renewLeases,
  toLeases,
  type ToThread,
} from "./lease-renewal.ts";

export type { Lease } from "./lease-renewal.ts";
// In the static module graph, so `deno compile` embeds the thread with the program: an app's
// image never has to `--include` the runtime's own files. It does nothing on this thread.
import "./lease-thread.ts";

/** What a lease keeper reports about the runs it keeps. */
export interface LeaseEvents {
  /** Runs (`[refcode, token]`) whose lease is no longer theirs (taken back, or task gone). */
  onLost(runs: Lease[]): void;
  /** Runs (`[refcode, token]`) asked to cancel (a safety net under the cancel channel). */
  onCancel(runs: Lease[]): void;
}

/** Renews the leases of the runs of one worker. */
export interface LeaseKeeper {
  /** `thread` or `loop`, for logs and tests. */
  readonly mode: "thread" | "loop";
  /** Starts renewing. */
  start(): Promise<void>;
  /**
   * Keeps a run's lease alive until it is untracked or `until` passes.
   *
   * @param refcode the task
   * @param token the run's lease token
   * @param until stop renewing after this time (epoch ms)
   */
  track(refcode: string, token: string, until: number): void;
  /** Stops renewing a run's lease. */
  untrack(refcode: string, token: string): void;
  /** Stops renewing every lease. */
  stop(): Promise<void>;
}

/** A run being kept. */
interface _Kept {
  token: string;
  until: number;
}

/** The runs a loop keeper renews. */
export class LeaseSet {
  #kept = new Map<string, _Kept>();

  /** @param leaseMs lease length */
  constructor(readonly leaseMs: number) {}

  /** Adds a run. */
  track(refcode: string, token: string, until: number): void {
    this.#kept.set(refcode, { token, until });
  }

  /** Removes a run (if that run, not a later one of the same task, is still there). */
  untrack(refcode: string, token: string): void {
    if (this.#kept.get(refcode)?.token === token) this.#kept.delete(refcode);
  }

  /** How many runs are kept. */
  get size(): number {
    return this.#kept.size;
  }

  /**
   * Renews every kept lease whose hard deadline has not passed.
   *
   * @param broker the broker to renew through
   * @returns lost runs and runs asked to cancel
   */
  async renew(broker: TaskBroker): Promise<{ lost: Lease[]; cancel: Lease[] }> {
    const { lost, ended } = await renewLeases(broker, this.entries(), this.leaseMs);
    return { lost: toLeases(lost), cancel: toLeases(ended) };
  }

  /** The kept runs. */
  entries(): TableEntry[] {
    return [...this.#kept].map(([refcode, k]) => ({ refcode, ...k }));
  }
}

/** Renews leases from the event loop (the embedded store, or when threads are unavailable). */
export class LoopLeaseKeeper implements LeaseKeeper {
  readonly mode = "loop" as const;
  #set: LeaseSet;
  #renewer: LeaseRenewer<TableEntry>;

  /**
   * @param broker the broker
   * @param leaseMs lease length
   * @param events where lost and cancelled runs are reported
   * @param log for renewal errors
   */
  constructor(broker: TaskBroker, leaseMs: number, events: LeaseEvents, log: Logger) {
    const set = this.#set = new LeaseSet(leaseMs);
    this.#renewer = new LeaseRenewer({
      held: () => set.entries(),
      renew: (runs) => renewLeases(broker, runs, leaseMs),
      onLost: (runs) => events.onLost(toLeases(runs)),
      onEnded: (runs) => events.onCancel(toLeases(runs)),
      everyMs: renewEvery(leaseMs),
      log,
    });
  }

  start(): Promise<void> {
    this.#renewer.start();
    return Promise.resolve();
  }

  track(refcode: string, token: string, until: number): void {
    this.#set.track(refcode, token, until);
  }

  untrack(refcode: string, token: string): void {
    this.#set.untrack(refcode, token);
  }

  stop(): Promise<void> {
    return this.#renewer.stop();
  }
}

/** Longest wait for the thread to start before falling back to the loop. */
const THREAD_START_TIMEOUT_MS = 10_000;

/** Longest wait for the thread to close its connection before it is terminated. */
const THREAD_STOP_TIMEOUT_MS = 2_000;

/** Renews leases from a Web Worker with its own Redis connection. */
export class ThreadLeaseKeeper implements LeaseKeeper {
  readonly mode = "thread" as const;
  #rt: Runtime;
  #leaseMs: number;
  #events: LeaseEvents;
  #log: Logger;
  #worker: Worker | undefined;
  #stopped: (() => void) | undefined;
  #table: LeaseTable;
  #full = false;

  /**
   * @param rt the runtime (its Redis URL and key prefix)
   * @param leaseMs lease length
   * @param events where lost and cancelled runs are reported
   * @param log for thread errors
   * @param slots most runs tracked at once
   */
  constructor(rt: Runtime, leaseMs: number, events: LeaseEvents, log: Logger, slots: number) {
    this.#table = new LeaseTable(slots);
    this.#rt = rt;
    this.#leaseMs = leaseMs;
    this.#events = events;
    this.#log = log;
  }

  async start(): Promise<void> {
    const worker = new Worker(new URL("./lease-thread.ts", import.meta.url), { type: "module" });
    const ready = new Promise<void>((resolve, reject) => {
      worker.onerror = (event) => {
        event.preventDefault();
        reject(new Error(`Lease thread failed: ${event.message}`));
      };
      worker.onmessage = (event: MessageEvent<FromThread>) => {
        const msg = event.data;
        if (msg.op === "ready") resolve();
        else if (msg.op === "renewed") {
          if (msg.lost.length) this.#events.onLost(msg.lost);
          if (msg.cancel.length) this.#events.onCancel(msg.cancel);
        } else if (msg.op === "stopped") this.#stopped?.();
      };
    });
    this.#post(worker, {
      op: "init",
      redisUrl: this.#rt.config.redisUrl!,
      redis: redisOptions(this.#rt.config),
      keyPrefix: this.#rt.config.keyPrefix,
      leaseMs: this.#leaseMs,
      logLevel: this.#rt.config.logLevel,
      table: this.#table.buffer,
    });
    try {
      await deadline(
        ready,
        THREAD_START_TIMEOUT_MS,
        () => new Error("Lease thread did not start in time"),
      );
    } catch (err) {
      worker.terminate();
      throw err;
    }
    worker.onerror = (event) => {
      event.preventDefault();
      this.#log.error("lease thread failed", { error: event.message });
    };
    this.#worker = worker;
  }

  #post(worker: Worker | undefined, msg: ToThread): void {
    worker?.postMessage(msg);
  }

  track(refcode: string, token: string, until: number): void {
    // Shared memory, not a message: the thread sees the run even if the handler blocks at once.
    if (!this.#table.put(refcode, token, until) && !this.#full) {
      this.#full = true;
      this.#log.error("lease table full: some leases are not renewed", {
        slots: this.#table.slots,
      });
    }
  }

  untrack(refcode: string, token: string): void {
    this.#table.remove(refcode, token);
  }

  async stop(): Promise<void> {
    const worker = this.#worker;
    if (!worker) return;
    this.#worker = undefined;
    const stopped = new Promise<void>((resolve) => {
      this.#stopped = resolve;
      this.#post(worker, { op: "stop" });
    });
    await settleBy(stopped, Date.now() + THREAD_STOP_TIMEOUT_MS);
    worker.terminate();
  }
}

/**
 * Makes the keeper that fits the store: a thread on Redis (falling back to the loop if the
 * thread cannot start), the loop on the embedded store.
 *
 * @param rt the runtime
 * @param broker the broker (for the loop keeper)
 * @param leaseMs lease length
 * @param events where lost and cancelled runs are reported
 * @param log for keeper errors
 * @param options `slots`: most runs at once; `mode` `loop` renews on the event loop even on Redis
 * @returns a started keeper
 */
export async function startLeaseKeeper(
  rt: Runtime,
  broker: TaskBroker,
  leaseMs: number,
  events: LeaseEvents,
  log: Logger,
  options: { slots: number; mode?: "auto" | "loop" },
): Promise<LeaseKeeper> {
  if ((options.mode ?? "auto") === "auto" && rt.store.kind === "redis" && rt.config.redisUrl) {
    const thread = new ThreadLeaseKeeper(rt, leaseMs, events, log, options.slots);
    try {
      await thread.start();
      return thread;
    } catch (err) {
      log.warn("lease thread unavailable; renewing leases on the event loop", { error: err });
    }
  }
  const loop = new LoopLeaseKeeper(broker, leaseMs, events, log);
  await loop.start();
  return loop;
}
