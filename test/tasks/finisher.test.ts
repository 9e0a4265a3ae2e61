/**
 * The worker's outcome writer: a write that arrives just as a flush finds its queue empty
 * starts a new flush instead of joining the ended one (it was stranded until its lease ran out,
 * and the task ran again; seen as a task left `in_progress` for the whole lease under load).
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { _Finisher } from "../../src/tasks/worker.ts";
import type { FinishEntry, FinishResult, TaskBroker } from "../../src/tasks/broker.ts";
import { createLogger } from "../../src/log.ts";

function entry(refcode: string): FinishEntry {
  return { refcode, type: "job", token: "tok", outcome: { kind: "ok", result: "null" } };
}

/** A broker whose finish answers "completed" for each entry, and counts its calls. */
function broker(calls: string[][]): TaskBroker {
  return {
    finish: (entries: readonly FinishEntry[]): Promise<FinishResult[]> => {
      calls.push(entries.map((e) => e.refcode));
      return Promise.resolve(entries.map(() => "completed" as const));
    },
  } as unknown as TaskBroker;
}

test("a write made as the previous flush resolves is written, not stranded", async () => {
  const calls: string[][] = [];
  const finisher = new _Finisher(broker(calls), createLogger("error"));
  assert.is(await finisher.write(entry("a")), "completed");
  // The continuation above runs before the ended flush's clean-up would have, on the old code.
  const second = finisher.write(entry("b"));
  const outcome = await Promise.race([
    second,
    new Promise((r) => setTimeout(() => r("stranded"), 1000)),
  ]);
  assert.is(outcome, "completed");
  assert.equal(calls, [["a"], ["b"]]);
});

test("writes made while one is in flight go out together in the next batch", async () => {
  const calls: string[][] = [];
  const finisher = new _Finisher(broker(calls), createLogger("error"));
  const all = ["a", "b", "c"].map((r) => finisher.write(entry(r)));
  assert.equal(await Promise.all(all), ["completed", "completed", "completed"]);
  await finisher.drain();
  assert.equal(calls, [["a"], ["b", "c"]]);
});

test.run();
