/**
 * @module `deno task capacity`: calibrates a parallel task of the example system on this machine
 * and prints how many workers and pods finish N items before a deadline (the same answer as
 * `GET /parallel-tasks/capacity`).
 *
 * Usage: `deno task capacity [--task primes] [--items 10000000] [--deadline-ms 5000]
 * [--json]`. `PARALLEL_MAX_WORKERS` caps threads per pod; with `REDIS_URL` set, the Redis round
 * trip counts per chunk.
 */
import { loadConfig } from "../src/config.ts";
import { createLogger } from "../src/log.ts";
import { RedisStore } from "../src/infra/redis.ts";
import { CapacityPlanner } from "../src/parallel/capacity.ts";
import { PARALLEL_TASKS } from "../src/parallel/define.ts";
import { exampleSystem } from "../src/example/mod.ts";

const arg = (name: string, fallback: string) => {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < Deno.args.length ? Deno.args[i + 1] : fallback;
};
const taskId = arg("task", "primes");
const items = Number(arg("items", "10000000"));
const deadlineMs = Number(arg("deadline-ms", "5000"));
if (!Number.isInteger(items) || items < 1 || !Number.isInteger(deadlineMs) || deadlineMs < 1) {
  console.error("--items and --deadline-ms must be positive integers");
  Deno.exit(2);
}

const config = loadConfig();
const def = exampleSystem().get(PARALLEL_TASKS, taskId);
if (!def) {
  console.error(`Parallel task "${taskId}" is not defined in the example system`);
  Deno.exit(2);
}
const store = config.redisUrl
  ? new RedisStore(config.redisUrl, createLogger("error", { component: "capacity" }))
  : undefined;
try {
  const plan = await new CapacityPlanner(store, config.parallelMaxWorkers).plan(
    def,
    items,
    deadlineMs,
  );
  if (Deno.args.includes("--json")) {
    console.log(JSON.stringify(plan, null, 2));
  } else {
    const c = plan.calibration;
    const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
    console.log(`${taskId}: ${items} items before ${deadlineMs} ms, on this machine`);
    console.log(
      `  calibration: ${c.chunks} chunks, ${c.chunk_ms} ms per chunk (${c.sampled_chunks} timed ` +
        `on a warm thread) = ${c.item_us} µs per item; ${c.overhead_ms} ms overhead per chunk, ` +
        `${c.start_ms} ms per run; a thread costs ${mb(c.thread_memory_bytes)}; ${c.cores} cores`,
    );
    console.log(
      `  answer: ${plan.feasible ? "" : "NOT FEASIBLE, best effort: "}worker_count ` +
        `${plan.workers} → ${plan.pods} pod(s) of ${plan.workers_per_pod} worker thread(s), ` +
        `~${plan.estimated_ms} ms (sized for ${(1 - plan.headroom) * 100} % of the deadline), ` +
        `~${mb(plan.pod_memory_bytes)} per pod`,
    );
    console.log(`  formula: ${plan.formula}`);
  }
} finally {
  await store?.close();
}
