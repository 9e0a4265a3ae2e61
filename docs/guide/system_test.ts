/**
 * @module Unit tests of the signups service's handlers: no Redis, no Kafka (`deno task test`).
 */
import assert from "node:assert/strict";
import { System, taskClient } from "@svc/runtime";
import { deliver, runSchedules, runTask, testRuntime } from "@svc/runtime/testing";
import { digest, signupKey, signups, sumSquares, welcome } from "./system.ts";

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

Deno.test("a signup is recorded once and welcomed; a bad email goes to signups.dlq", async () => {
  await using rt = testRuntime({ system: new System().add(welcome, signups) });
  const ada = { email: "ada@example.com" };
  const outcomes = await deliver(signups, [
    { key: ada.email, value: ada },
    { key: ada.email, value: ada }, // a duplicate: recorded and welcomed once
    { key: "x", value: { email: "not an email" } },
  ], { rt });
  assert.deepEqual(outcomes.map((o) => o.outcome), ["handled", "handled", "dead-lettered"]);
  assert.equal(outcomes[2].reason, "schema");
  const key = signupKey(rt.config.keyPrefix, ada.email);
  assert.equal(await rt.store.command(["HGET", key, "email"]), ada.email);
  const queued = await taskClient(rt).list("queued", { type: "welcome" });
  assert.equal(queued.length, 1);
});

Deno.test("the digest runs at 03:00 UTC, once a night", async () => {
  await using rt = testRuntime({ system: new System().add(digest) });
  const runs = await runSchedules(rt, {
    from: "2025-01-01T00:00:00Z",
    until: "2025-01-03T00:00:00Z",
  });
  assert.deepEqual(runs.map((r) => [r.scheduledAt, r.status]), [
    ["2025-01-01T03:00:00.000Z", "completed"],
    ["2025-01-02T03:00:00.000Z", "completed"],
  ]);
});
