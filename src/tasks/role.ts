/**
 * @module The `async-worker` role: the worker loop and the recoverer.
 */
import type { Runtime, Service } from "../runtime.ts";
import { TaskWorker, type TaskWorkerOptions } from "./worker.ts";
import { Recoverer, type RecovererOptions } from "./recoverer.ts";

/**
 * Creates the services of the `async-worker` role. Both stop together: the worker finishes or
 * hands back its runs; the recoverer just ends its pass.
 *
 * @param rt the runtime
 * @param options worker and recoverer options (tests, benchmarks)
 * @returns the worker, then the recoverer
 */
export function asyncWorkerServices(
  rt: Runtime,
  options: { worker?: TaskWorkerOptions; recoverer?: RecovererOptions } = {},
): Service[] {
  return [new TaskWorker(rt, options.worker), new Recoverer(rt, options.recoverer)];
}
