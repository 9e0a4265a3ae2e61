import { suite } from "uvu";
import * as assert from "uvu/assert";
import { backends, cleanup, onCleanup, type StoreTime, timedRuntime, waitFor } from "../helpers.ts";
import { Heartbeat } from "../../src/parallel/heartbeat.ts";
import { type Held, RunStore } from "../../src/parallel/store.ts";

/** A lease of three beats; on Redis (real time) of ten, so a late beat on a busy machine is no loss. */
const LEASE_MS = (time: StoreTime) => time.clock ? 300 : 1000;

for (const backend of backends()) {
  const test = suite(`Heartbeat on ${backend.name}`);
  test.after(cleanup);

  const setup = async () => {
    // Leases and beats on one manual clock on the embedded engine: the test moves time instead
    // of waiting for it. Redis's clock cannot be moved: there the time passes.
    const { rt, time } = await timedRuntime(backend);
    const runs = new RunStore(rt.store, rt.config.keyPrefix);
    const refcode = await runs.create({
      taskId: "t",
      workerCount: 1,
      chunks: [1, 2],
      leaseMs: LEASE_MS(time),
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
      time.loops,
    );
    onCleanup(() => beat.stop());
    return { runs, refcode, held, lost, beat, time };
  };

  test("beats keep a lease alive past its length", async () => {
    const { runs, refcode, held, lost, beat, time } = await setup();
    await runs.claim(refcode, "a");
    held.push({ slot: "0", token: "a" });
    beat.start();
    await time.elapse(3 * LEASE_MS(time)); // three leases long, a beat every 100 ms
    assert.equal(await runs.claim(refcode, "b"), { kind: "full" });
    assert.equal(lost, []);
    beat.stop();
    await time.elapse(LEASE_MS(time) + 1); // no beat: the lease runs out
    assert.equal((await runs.claim(refcode, "b")).kind, "chunk");
  });

  test("a beat stops every chunk of a run that ended", async () => {
    const { runs, refcode, held, lost, beat, time } = await setup();
    await runs.claim(refcode, "a");
    held.push({ slot: "0", token: "a" });
    beat.start();
    await runs.cancel(refcode);
    await time.elapse(100);
    await waitFor(() => lost.length, 2000, "the beat after the cancel");
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
