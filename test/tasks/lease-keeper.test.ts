// test-runner: alone (a lease thread renews a 500 ms lease while the machine is busy elsewhere)
import { test } from "uvu";
import * as assert from "uvu/assert";
import { System } from "../../src/system.ts";
import type { Runtime } from "../../src/runtime.ts";
import { taskClient } from "../../src/tasks/client.ts";
import { LeaseSet } from "../../src/tasks/lease-keeper.ts";
import { Recoverer } from "../../src/tasks/recoverer.ts";
import { TaskWorker } from "../../src/tasks/worker.ts";
import { blockTask } from "./fixtures/blocking-worker.ts";
import {
  backends,
  claimAll,
  cleanup,
  onCleanup,
  spawnProgram,
  testRuntime,
  waitFor,
} from "../helpers.ts";

test.after(cleanup);

/** A recoverer that counts what it takes back, and its passes (those not skipped). */
async function countingRecoverer(
  rt: Runtime,
): Promise<{ reclaimed: () => number; passes: () => number }> {
  const recoverer = new Recoverer(rt, { intervalMs: 100 });
  let reclaimed = 0, passes = 0;
  const recover = recoverer.recover.bind(recoverer);
  recoverer.recover = async () => {
    const n = await recover();
    reclaimed += n;
    passes++;
    return n;
  };
  await recoverer.start();
  onCleanup(() => recoverer.stop());
  return { reclaimed: () => reclaimed, passes: () => passes };
}

for (const backend of backends()) {
  const name = (s: string) => `[${backend.name}] ${s}`;

  test(name("LeaseSet.renew() reports lost and cancelled runs with their tokens"), async () => {
    const rt = testRuntime({
      redis: backend.name === "redis",
      system: new System().add(blockTask),
    });
    const client = taskClient(rt);
    const broker = client.broker;
    const a = await client.enqueue("block", { ms: 0 });
    const b = await client.enqueue("block", { ms: 0 });
    const c = await client.enqueue("block", { ms: 0 });
    const tasks = await claimAll(broker, [["block", 3]], 5000, "w.1", "w");
    const token = (ref: string) => tasks.find((t) => t.refcode === ref)!.token;
    const set = new LeaseSet(5000);
    set.track(a.refcode, token(a.refcode), Date.now() + 60_000);
    set.track(b.refcode, "stale/1", Date.now() + 60_000);
    set.track(c.refcode, token(c.refcode), Date.now() - 1);
    await client.cancel(a.refcode);
    assert.equal(await set.renew(broker), {
      lost: [[b.refcode, "stale/1"]],
      cancel: [[a.refcode, token(a.refcode)]],
    });
  });
}

test("[memory] a handler blocking the event loop past its lease keeps its task", async () => {
  const rt = testRuntime({ system: new System().add(blockTask) });
  const worker = new TaskWorker(rt, { leaseMs: 300 });
  await worker.start();
  onCleanup(() => worker.stop(Date.now() + 2000));
  const recoverer = await countingRecoverer(rt);
  const client = taskClient(rt);
  const { refcode } = await client.enqueue("block", { ms: 1000 });
  const view = await client.wait(refcode, 10_000);
  assert.equal([view.status, view.attempts, view.result], ["completed", 1, { attempt: 1 }]);
  // A pass under way when the task completed has ended once a whole pass begun since has.
  const seen = recoverer.passes();
  await waitFor(() => recoverer.passes() >= seen + 2, 5000, "two more recovery passes");
  assert.is(recoverer.reclaimed(), 0);
});

if (backends().some((b) => b.name === "redis")) {
  const blockedRun = async (keeper: "auto" | "loop") => {
    const rt = testRuntime({ redis: true, system: new System().add(blockTask) });
    await spawnProgram({
      REDIS_URL: rt.config.redisUrl!,
      KEY_PREFIX: rt.config.keyPrefix,
      LEASE_MS: "500",
      LEASE_KEEPER: keeper,
      LOG_LEVEL: "warn",
    }, { entry: "test/tasks/fixtures/blocking-worker.ts" });
    // The recoverer runs in this process, whose event loop the blocking handler cannot stop.
    const recoverer = await countingRecoverer(rt);
    const client = taskClient(rt);
    const { refcode } = await client.enqueue("block", { ms: 2500 });
    return { client, refcode, recoverer };
  };

  test("[redis] the lease thread keeps a blocked handler's lease: no other process takes it", async () => {
    const { client, refcode, recoverer } = await blockedRun("auto");
    const view = await client.wait(refcode, 15_000);
    assert.equal([view.status, view.attempts, view.result], ["completed", 1, { attempt: 1 }]);
    assert.is(recoverer.reclaimed(), 0);
  });

  test("[redis] control: renewing on the blocked event loop loses the lease", async () => {
    const { recoverer } = await blockedRun("loop");
    await waitFor(() => recoverer.reclaimed() > 0, 15_000, "a reclaim");
  });
}

test.run();
