/**
 * @module The heartbeat of a parallel worker: the job core's lease renewal over the chunks it
 * runs, which also notices runs that ended (a missed cancel message) and chunks it lost.
 */
import type { Clock } from "../async/clock.ts";
import { LeaseRenewer, type Renewal } from "../jobs/lease.ts";
import type { Logger } from "../log.ts";
import type { Held, RunStore } from "./store.ts";

/** What the heartbeat needs from the processor. */
export interface HeartbeatHost {
  /** The leases held now, by refcode. */
  held(): Map<string, Held[]>;
  /** Stop these slots of a run (all of them when the run ended). */
  lost(refcode: string, slots: readonly string[] | "all"): void;
}

/** One chunk's (or the merge's) lease. */
interface _Lease extends Held {
  refcode: string;
}

/** Renews leases every `intervalMs` until stopped. */
export class Heartbeat {
  #renewer: LeaseRenewer<_Lease>;

  /**
   * @param runs the run store
   * @param host the processor
   * @param intervalMs time between beats (see `renewEvery`)
   * @param log where failures go
   * @param clock whose time the beats are on (default the wall clock)
   */
  constructor(
    runs: RunStore,
    host: HeartbeatHost,
    intervalMs: number,
    log: Logger,
    clock?: Clock,
  ) {
    this.#renewer = new LeaseRenewer<_Lease>({
      held: () =>
        [...host.held()].flatMap(([refcode, held]) => held.map((h) => ({ refcode, ...h }))),
      renew: (leases) => _renew(runs, leases),
      onLost: (leases) => {
        for (const [refcode, lost] of _byRun(leases)) host.lost(refcode, lost.map((l) => l.slot));
      },
      onEnded: (leases) => {
        for (const refcode of _byRun(leases).keys()) host.lost(refcode, "all");
      },
      everyMs: intervalMs,
      log,
      clock,
    });
  }

  /** Starts beating. */
  start(): void {
    this.#renewer.start();
  }

  /** Stops beating; resolves once a beat in progress ends. */
  stop(): Promise<void> {
    return this.#renewer.stop();
  }

  /** One beat: renews every held lease, stops what is no longer ours. */
  beat(): Promise<void> {
    return this.#renewer.renew();
  }
}

function _byRun(leases: _Lease[]): Map<string, _Lease[]> {
  const out = new Map<string, _Lease[]>();
  for (const l of leases) out.set(l.refcode, [...out.get(l.refcode) ?? [], l]);
  return out;
}

/** Renews the leases run by run (each run's keys share one slot). */
async function _renew(runs: RunStore, leases: _Lease[]): Promise<Renewal<_Lease>> {
  const out: Renewal<_Lease> = { lost: [], ended: [] };
  await Promise.all([..._byRun(leases)].map(async ([refcode, held]) => {
    const { status, lost } = await runs.heartbeat(refcode, held);
    if (status !== "in_progress") out.ended.push(...held);
    else out.lost.push(...held.filter((h) => lost.includes(h.slot)));
  }));
  return out;
}
