import { test } from "uvu";
import * as assert from "uvu/assert";
import * as v from "valibot";
import { System } from "../../src/system.ts";
import { defineTask } from "../../src/tasks/define.ts";
import { taskClient } from "../../src/tasks/client.ts";
import { ManualClock } from "../../src/async/clock.ts";
import { Recoverer } from "../../src/tasks/recoverer.ts";
import { TaskWorker } from "../../src/tasks/worker.ts";
import { backends, claimAll, cleanup, onCleanup, testRuntime, timedRuntime } from "../helpers.ts";

test.after(cleanup);

const job = defineTask({
  name: "job",
  input: v.unknown(),
  attempts: 2,
  handler: (_input, ctx) => ({ attempt: ctx.attempt }),
});

for (const backend of backends()) {
  const name = (s: string) => `[${backend.name}] ${s}`;
  const make = () =>
    testRuntime({ redis: backend.name === "redis", system: new System().add(job) });

  test(
    name("a dead worker's tasks are taken back and completed by another (attempt 2)"),
    async () => {
      const rt = make();
      const client = taskClient(rt);
      const refs = [];
      for (let i = 0; i < 3; i++) refs.push((await client.enqueue("job", {})).refcode);
      // A worker that claims, then dies without renewing or finishing.
      const dead = await claimAll(client.broker, [["job", 3]], 200, "dead.1", "dead");
      assert.is(dead.length, 3);
      const worker = new TaskWorker(rt);
      const recoverer = new Recoverer(rt, { intervalMs: 100 });
      await worker.start();
      await recoverer.start();
      onCleanup(async () => {
        await recoverer.stop();
        await worker.stop(Date.now() + 2000);
      });
      for (const refcode of refs) {
        const view = await client.wait(refcode, 10_000);
        assert.equal([view.status, view.attempts, view.result], ["completed", 2, { attempt: 2 }]);
      }
      const metrics = await rt.metrics.metrics();
      assert.match(metrics, /task_reclaims_total\{type="job"\} 3/);
    },
  );

  test(name("recover() fails a task whose last attempt's worker died"), async () => {
    // Leases run out on the store's clock: a manual one on the embedded engine.
    const { rt, time } = await timedRuntime(backend, { system: new System().add(job) });
    const client = taskClient(rt);
    const { refcode } = await client.enqueue("job", {});
    await claimAll(client.broker, [["job", 1]], 50, "dead.1", "dead");
    await time.elapse(80);
    const recoverer = new Recoverer(rt);
    assert.is(await recoverer.recover(), 1);
    await claimAll(client.broker, [["job", 1]], 50, "dead.2", "dead");
    await time.elapse(80);
    assert.is(await recoverer.recover(), 1);
    const view = await client.get(refcode);
    assert.equal([view.status, view.attempts], ["failed", 2]);
    assert.match(view.error ?? "", /lease expired/);
  });
}

test("a recovery pass that starts late after an event-loop stall is skipped", async () => {
  const rt = testRuntime({ system: new System().add(job) });
  const clock = new ManualClock(Date.now());
  const recoverer = new Recoverer(rt, { intervalMs: 100, clock });
  let passes = 0;
  recoverer.recover = () => Promise.resolve(passes++);
  await recoverer.start();
  onCleanup(() => recoverer.stop());
  // A stall: the wake-up comes 400 ms after it was due (more than half an interval late).
  await clock.jumpTo(clock.now() + 520);
  assert.is(passes, 0);
  await clock.advance(120); // the next pass is on time
  assert.is(passes, 1);
});

test.run();
