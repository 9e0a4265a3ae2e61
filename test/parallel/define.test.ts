import { test } from "uvu";
import * as assert from "uvu/assert";
import * as v from "valibot";
import {
  DEFAULT_LEASE_MS,
  DEFAULT_MAX_ATTEMPTS,
  DEFAULT_MAX_WORKERS,
  defineParallelTask,
} from "../../src/parallel/define.ts";

const base = {
  name: "t",
  input: v.object({}),
  worker: new URL("./_worker.ts", import.meta.url),
  split: () => [],
  merge: () => null,
};

test("defineParallelTask() fills in the defaults", () => {
  const def = defineParallelTask(base);
  assert.is(def.kind, "parallel-task");
  assert.is(def.worker, base.worker.href);
  assert.is(def.maxWorkers, DEFAULT_MAX_WORKERS);
  assert.is(def.leaseMs, DEFAULT_LEASE_MS);
  assert.is(def.maxAttempts, DEFAULT_MAX_ATTEMPTS);
});

test("defineParallelTask() refuses bad names, workers and limits", () => {
  assert.throws(() => defineParallelTask({ ...base, name: "" }), /name/);
  assert.throws(() => defineParallelTask({ ...base, name: "a b" }), /name/);
  assert.throws(
    () => defineParallelTask({ ...base, worker: new URL("https://x/w.ts") }),
    /file: URL/,
  );
  assert.throws(
    () => defineParallelTask({ ...base, maxWorkers: 0 }),
    /maxWorkers must be an integer from 1 to 1024/,
  );
  assert.throws(() => defineParallelTask({ ...base, maxWorkers: 1.5 }), /maxWorkers/);
  assert.throws(() => defineParallelTask({ ...base, leaseMs: 10 }), /leaseMs/);
  assert.throws(() => defineParallelTask({ ...base, maxAttempts: 0 }), /maxAttempts/);
});

test.run();
