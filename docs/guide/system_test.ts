/**
 * @module Unit tests of the signups service's handlers: no Redis, no Kafka (`deno task test`).
 */
import assert from "node:assert/strict";
import { runTask, testRuntime } from "@svc/runtime/testing";
import { signupKey, sumSquares, welcome } from "./system.ts";

Deno.test("welcome marks the signup welcomed and reports progress", async () => {
  await using rt = testRuntime();
  const run = await runTask(welcome, { email: "ada@example.com" }, { rt });
  assert.equal(run.status, "completed");
  assert.deepEqual(run.result, { sent_to: "ada@example.com" });
  assert.deepEqual(run.progress, [0.5]);
  const key = signupKey(rt.config.keyPrefix, "ada@example.com");
  assert.equal(await rt.store.command(["HGET", key, "welcomed"]), "1");
});

Deno.test("sum-squares splits into one chunk per worker and merges the sums", async () => {
  const { default: worker } = await import("./workers/squares.ts");
  const chunks = sumSquares.split({ n: 10 }, { workerCount: 3 });
  assert.equal(chunks.length, 3);
  const never = { aborted: false, throwIfAborted() {} };
  const sums = chunks.map((chunk) => worker(chunk, never));
  assert.deepEqual(sumSquares.merge(sums), { sum: 285 });
});
