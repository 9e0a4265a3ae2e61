/**
 * @module The lease pattern every job engine follows: a worker claims work under a lease (a
 * token and an expiry in the store), renews what it holds a few times per lease, learns from
 * each renewal what it lost or what ended meanwhile, and the store takes back what nobody
 * renewed (reclaim). This file holds the clock of leases and the worker's side: the renewal
 * cadence and the loop.
 */
import { type Clock, systemClock } from "../async/clock.ts";
import { Loop } from "../async/loop.ts";
import type { Logger } from "../log.ts";

/**
 * Lua: `now`, the store's clock in epoch ms (`TIME`), read once at the top of every script of
 * the job engines. Every lease expiry, reclaim, retry due time and job time stamp is on it, so
 * pods with skewed clocks agree on when a lease ran out; the embedded store's `TIME` follows the
 * clock it is given, so tests drive the same scripts with a manual clock.
 */
export const NOW_LUA = `local _t = redis.call("TIME")
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
`;

/**
 * How often a lease is renewed: four chances per lease, so one late or failed renewal never
 * loses it.
 *
 * @param leaseMs the lease's length
 * @returns milliseconds between renewals (at least 50)
 */
export const renewEvery = (leaseMs: number): number => Math.max(50, Math.floor(leaseMs / 4));

/** What one renewal pass learned about the leases it renewed. */
export interface Renewal<L> {
  /** No longer this worker's: taken back, or the job is gone. Their results are refused. */
  lost: L[];
  /** Still held, but their job ended or was asked to stop (a cancel). */
  ended: L[];
}

/** What a {@link LeaseRenewer} renews, how, and whom it tells. */
export interface LeaseRenewerOptions<L> {
  /** The leases held now (read at every pass). */
  held(): L[];
  /** Renews them in the store. */
  renew(leases: L[]): Promise<Renewal<L>>;
  /** Told the leases that were lost. */
  onLost(leases: L[]): void;
  /** Told the leases whose job ended. */
  onEnded(leases: L[]): void;
  /** Time between passes (see {@link renewEvery}). */
  everyMs: number;
  /** Where a failing renewal is said, once per outage. */
  log: Logger;
  /** Whose time the passes are on (default the wall clock). */
  clock?: Clock;
}

/**
 * Renews a worker's leases until stopped. While the store is unreachable the leases run out
 * and the store's reclaim gives their work to another worker, so a failing pass is only worth
 * one log line per outage.
 *
 * @example
 * ```ts
 * const renewer = new LeaseRenewer({ held, renew, onLost, onEnded, everyMs: 250, log });
 * renewer.start();
 * await renewer.stop();
 * ```
 */
export class LeaseRenewer<L> {
  #options: LeaseRenewerOptions<L>;
  #loop: Loop;
  #failing = false;

  /** @param options what to renew, how, and whom to tell */
  constructor(options: LeaseRenewerOptions<L>) {
    this.#options = options;
    this.#loop = new Loop(() => this.renew(), {
      everyMs: options.everyMs,
      clock: options.clock ?? systemClock,
    });
  }

  /** Starts renewing. */
  start(): void {
    this.#loop.start();
  }

  /** Stops renewing; resolves once a pass in progress ended. */
  stop(): Promise<void> {
    return this.#loop.stop();
  }

  /** One pass: renews every held lease and reports what was lost or ended. Never throws. */
  async renew(): Promise<void> {
    const held = this.#options.held();
    if (held.length === 0) return;
    try {
      const { lost, ended } = await this.#options.renew(held);
      if (this.#failing) this.#options.log.info("lease renewal works again");
      this.#failing = false;
      if (lost.length) this.#options.onLost(lost);
      if (ended.length) this.#options.onEnded(ended);
    } catch (err) {
      if (!this.#failing) this.#options.log.warn("lease renewal failed", { error: String(err) });
      this.#failing = true;
    }
  }
}
