import { suite } from "uvu";
import * as assert from "uvu/assert";
import { backends, cleanup, onCleanup, testRuntime, waitFor } from "../helpers.ts";
import { ManualClock } from "../../src/async/clock.ts";
import { Heartbeat } from "../../src/parallel/heartbeat.ts";
import { type Held, RunStore } from "../../src/parallel/store.ts";

for (const backend of backends()) {
  const test = suite(`Heartbeat on ${backend.name}`);
  test.after(cleanup);

  const setup = async () => {
    const rt = testRuntime({ redis: backend.name === "redis" });
    await waitFor(async () => (await rt.store.check()).ok, 5000, "store ready");
    // Leases and beats on one manual clock: the test moves time instead of waiting for it.
    const clock = new ManualClock(Date.now());
    const runs = new RunStore(rt.store, rt.config.keyPrefix, () => clock.now());
    const refcode = await runs.create({
      taskId: "t",
      workerCount: 1,
      chunks: [1, 2],
      leaseMs: 300,
      maxAttempts: 3,
    });
    const held: Held[] = [];
    const lost: (readonly string[] | "all")[] = [];
    const beat = new Heartbeat(
      runs,
      {
        held: () => new Map(held.length ? [[refcode, held]] : []),
        lost: (_, slots) => lost.push(slots),
      },
      100,
      rt.log,
      clock,
    );
    onCleanup(() => beat.stop());
    return { runs, refcode, held, lost, beat, clock };
  };

  test("beats keep a lease alive past its length", async () => {
    const { runs, refcode, held, lost, beat, clock } = await setup();
    await runs.claim(refcode, "a");
    held.push({ slot: "0", token: "a" });
    beat.start();
    await clock.advance(900); // three leases long, a beat every 100 ms
    assert.equal(await runs.claim(refcode, "b"), { kind: "full" });
    assert.equal(lost, []);
    beat.stop();
    await clock.advance(301); // no beat: the lease runs out
    assert.equal((await runs.claim(refcode, "b")).kind, "chunk");
  });

  test("a beat stops every chunk of a run that ended", async () => {
    const { runs, refcode, held, lost, beat, clock } = await setup();
    await runs.claim(refcode, "a");
    held.push({ slot: "0", token: "a" });
    beat.start();
    await runs.cancel(refcode);
    await clock.advance(100);
    assert.equal(lost[0], "all");
  });

  test("a beat names the slots that are no longer ours", async () => {
    const { refcode, held, lost, beat, runs } = await setup();
    await runs.claim(refcode, "a");
    held.push({ slot: "0", token: "someone-else" });
    await beat.beat();
    assert.equal(lost, [["0"]]);
  });

  test.run();
}
