/**
 * @module ROLE → which services start, and the order they stop in.
 */
import type { Role } from "./config.ts";
import type { Runtime, Service } from "./runtime.ts";
import type { Definition, DefinitionKind } from "./definitions.ts";
import { BULK_CONSUMERS, CONSUMERS } from "./consumers/define.ts";
import { SCHEDULES } from "./scheduler/define.ts";
import { PARALLEL_TASKS } from "./parallel/define.ts";
import { TASKS } from "./tasks/define.ts";
import { bulkConsumerServices, consumerServices } from "./consumers/role.ts";
import { Scheduler } from "./scheduler/scheduler.ts";
import { parallelWorkerRole } from "./parallel/processor.ts";
import { asyncWorkerServices } from "./tasks/role.ts";

/** Creates the services of one role. */
export type RoleFactory = (rt: Runtime) => Service[];

/**
 * What each role runs. A role absent from this table is not built yet: naming it explicitly
 * stops start-up, and `all` leaves it out with a log line.
 */
export const ROLE_FACTORIES: Partial<Record<Role, RoleFactory>> = {
  // Every role gets the HTTP server (probes and metrics) from `main.ts`; `http` adds the API.
  http: () => [],
  consumer: consumerServices,
  "bulk-consumer": bulkConsumerServices,
  scheduler: (rt) => [new Scheduler(rt)],
  "async-worker": (rt) => asyncWorkerServices(rt),
  "parallel-worker": parallelWorkerRole,
};

/**
 * Stop order, first to last. Sources of new work stop first so nothing new arrives while the
 * rest drains: the HTTP API (stops accepting, answers what is in flight), then the scheduler
 * (no new ticks), then the loops that do work (consumers hand back or finish their batch,
 * workers finish or release their leases). The store and bus close after all of them, since
 * every one of them writes to them while it drains.
 */
export const STOP_ORDER: readonly Role[] = [
  "http",
  "scheduler",
  "consumer",
  "bulk-consumer",
  "async-worker",
  "parallel-worker",
];

/**
 * The kind of definition each worker role runs, for the start-up check that it has something
 * to run (`http` always serves the built-in API).
 */
const ROLE_RUNS: Partial<Record<Role, { kind: DefinitionKind<Definition>; what: string }>> = {
  consumer: { kind: CONSUMERS, what: "consumer (defineConsumer)" },
  "bulk-consumer": { kind: BULK_CONSUMERS, what: "bulk consumer (defineBulkConsumer)" },
  scheduler: { kind: SCHEDULES, what: "schedule (defineSchedule)" },
  "async-worker": { kind: TASKS, what: "task (defineTask)" },
  "parallel-worker": { kind: PARALLEL_TASKS, what: "parallel task (defineParallelTask)" },
};

/** A role was named explicitly but cannot run: not built, or nothing of its kind is defined. */
export class RoleUnavailableError extends Error {
  /**
   * @param role the role named in `ROLE`
   * @param why what is missing
   */
  constructor(readonly role: Role, why = "is not available yet") {
    super(`ROLE: "${role}" ${why}`);
    this.name = "RoleUnavailableError";
  }
}

/**
 * Resolves which roles start. A role with nothing to run (no definition of its kind) stops
 * start-up when `ROLE` names it, and is left out with a warning under `all`.
 *
 * @param requested roles from the configuration (all six when `ROLE=all`)
 * @param explicit whether `ROLE` named them (not `all`)
 * @param rt the runtime (its system; the log line on skipped roles)
 * @returns roles that can start, in stop order
 * @throws {RoleUnavailableError} when an explicitly named role cannot run
 */
export function availableRoles(requested: Role[], explicit: boolean, rt: Runtime): Role[] {
  const out: Role[] = [];
  for (const role of STOP_ORDER) {
    if (!requested.includes(role)) continue;
    const runs = ROLE_RUNS[role];
    const why = !ROLE_FACTORIES[role]
      ? "is not available yet"
      : runs && rt.system.all(runs.kind).length === 0
      ? `has nothing to run: the system defines no ${runs.what}`
      : undefined;
    if (why === undefined) out.push(role);
    else if (explicit) throw new RoleUnavailableError(role, why);
    else rt.log.warn("role left out", { role, reason: `it ${why}` });
  }
  return out;
}
