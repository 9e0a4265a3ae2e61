/**
 * @module Starting a parallel run from code: what `POST /parallel-tasks` does, for schedules,
 * consumers, handlers and scripts.
 */
import { safeParse, type SchemaInput, valibotSchema } from "../schema.ts";
import { HttpProblem } from "../http/problem.ts";
import { arrayForObject, toIssues } from "../http/validate.ts";
import { perRuntime, type Runtime } from "../runtime.ts";
import { PARALLEL_TASKS, type ParallelTask } from "./define.ts";
import { activeRunsKey, runKeys } from "./keys.ts";
import { parallelMetrics } from "./metrics.ts";
import { RunStore } from "./store.ts";

/** `Retry-After` of a 429 for a task at its `maxActiveRuns`. */
const RUNS_FULL_RETRY_S = 10;

/** What {@link startParallelRun} returns. */
export interface ParallelRunStarted {
  /** The run's refcode (`GET /parallel-tasks/{refcode}`). */
  refcode: string;
  /** The task's name. */
  taskId: string;
  /** Threads the run may use at once across the cluster. */
  workerCount: number;
  /** Always `queued`: a `parallel-worker` picks it up. */
  status: "queued";
}

/** The input a parallel task takes: typed by its definition, `unknown` for a name. */
export type ParallelInput<T extends ParallelTask | string> = T extends
  ParallelTask<infer S, unknown, unknown, unknown> ? SchemaInput<S> : unknown;

/** Runs `work` for one key at a time (a promise chain per key). */
function _serialized(): <T>(key: string, work: () => Promise<T>) => Promise<T> {
  const tails = new Map<string, Promise<unknown>>();
  return (key, work) => {
    const run = (tails.get(key) ?? Promise.resolve()).then(work);
    const tail = run.catch(() => {});
    tails.set(key, tail);
    tail.then(() => tails.get(key) === tail && tails.delete(key));
    return run;
  };
}

/** One admission queue per runtime, so the cap holds across all of this process's routes. */
const _admission = perRuntime(() => _serialized());

const _between = (min: number, max: number) => `must be an integer from ${min} to ${max}`;

const _invalid = (issues: { path: string; message: string }[]) =>
  new HttpProblem(400, "The request body is invalid", { issues });

/**
 * Starts a parallel run: checks `workerCount` and the input against the task, splits it into
 * chunks and queues them for the `parallel-worker`s, as `POST /parallel-tasks` does.
 *
 * @param rt the runtime
 * @param task the parallel task's definition (its input is then typed) or its name
 * @param input the run's input
 * @param options `workerCount`: threads the run may use at once, 1 to the task's `maxWorkers`
 * @returns the run's refcode, queued
 * @throws {HttpProblem} 404 for an unknown task, 400 (with `issues`) for a bad `workerCount` or
 *   input, 429 when the task already has `maxActiveRuns` runs
 * @example
 * ```ts ignore
 * const { refcode } = await startParallelRun(rt, primesTask, { from: 0, to: 1e6 }, {
 *   workerCount: 4,
 * });
 * ```
 */
export async function startParallelRun<T extends ParallelTask | string>(
  rt: Runtime,
  task: T,
  input: ParallelInput<T>,
  options: { workerCount: number },
): Promise<ParallelRunStarted> {
  const name = typeof task === "string" ? task : task.name;
  const def = rt.system.get(PARALLEL_TASKS, name);
  if (!def) throw new HttpProblem(404, `Parallel task "${name}" is not defined`);
  const { workerCount } = options;
  if (!Number.isInteger(workerCount) || workerCount < 1 || workerCount > def.maxWorkers) {
    throw _invalid([{ path: "worker_count", message: _between(1, def.maxWorkers) }]);
  }
  const array = arrayForObject(valibotSchema(def.input), input);
  if (array) throw _invalid([{ ...array, path: "input" }]);
  const parsed = safeParse(def.input, input);
  if (!parsed.success) {
    throw _invalid(
      toIssues(parsed.issues).map((i) => ({ ...i, path: i.path ? `input.${i.path}` : "input" })),
    );
  }
  let chunks: unknown[];
  try {
    chunks = def.split(parsed.output, { workerCount });
  } catch (err) {
    throw _invalid([{ path: "input", message: `cannot be split: ${err}` }]);
  }
  if (chunks.length > def.maxChunks) {
    throw _invalid([{
      path: "input",
      message:
        `splits into ${chunks.length} chunks; at most ${def.maxChunks} are allowed (maxChunks)`,
    }]);
  }
  let emptyResult: unknown;
  if (chunks.length === 0) {
    try {
      emptyResult = await def.merge([]);
    } catch (err) {
      throw _invalid([{ path: "input", message: `holds no work and merges to nothing: ${err}` }]);
    }
  }
  const runs = new RunStore(rt.store, rt.config.keyPrefix);
  const admit = _admission(rt);
  // Counted and created one at a time per task in this process, so concurrent requests to one
  // replica cannot pass the cap together (across replicas it may be exceeded by the requests
  // in flight at once).
  const refcode = await admit(def.name, async () => {
    const active = await runs.activeCount(def.name);
    if (active >= def.maxActiveRuns) {
      throw new HttpProblem(
        429,
        `Parallel task "${def.name}" already has ${active} runs queued or running (at most ${def.maxActiveRuns}, its maxActiveRuns); retry later`,
        { limit: def.maxActiveRuns },
        { "retry-after": String(RUNS_FULL_RETRY_S) },
      );
    }
    return await runs.create({
      taskId: def.name,
      workerCount,
      chunks,
      leaseMs: def.leaseMs,
      maxAttempts: def.maxAttempts,
      emptyResult,
    });
  });
  // Accepted (202) only once REDIS_WAIT_REPLICAS replicas hold the run and its index entry.
  await rt.store.replicate([
    runKeys(rt.config.keyPrefix, refcode).run,
    activeRunsKey(rt.config.keyPrefix, def.name),
  ]);
  parallelMetrics(rt).runs.inc({ task_id: def.name });
  return { refcode, taskId: def.name, workerCount, status: "queued" };
}
