import { test } from "uvu";
import * as assert from "uvu/assert";
import { Committer } from "../../src/consumers/committer.ts";
import type { GroupConsumer, PartitionOffset } from "../../src/infra/bus-consumer.ts";
import { createLogger } from "../../src/log.ts";
import { waitFor } from "../helpers.ts";

function fakeConsumer(fail = { count: 0 }) {
  const commits: PartitionOffset[][] = [];
  const consumer = {
    commit(offsets: PartitionOffset[]) {
      if (fail.count > 0) {
        fail.count--;
        return Promise.reject(new Error("coordinator moved"));
      }
      commits.push(offsets);
      return Promise.resolve(offsets);
    },
  } as unknown as GroupConsumer;
  return { consumer, commits };
}

const log = createLogger("error");

test("flush() commits the highest handled offset per partition, once", async () => {
  const { consumer, commits } = fakeConsumer();
  const c = new Committer(consumer, log, 60_000);
  c.done({ topic: "t", partition: 0, offset: 3 });
  c.done({ topic: "t", partition: 0, offset: 5 });
  c.done({ topic: "t", partition: 0, offset: 4 });
  c.done({ topic: "t", partition: 1, offset: 1 });
  await c.flush();
  await c.flush();
  assert.equal(commits, [[{ topic: "t", partition: 0, offset: 5 }, {
    topic: "t",
    partition: 1,
    offset: 1,
  }]]);
});

test("a failed commit keeps the offsets for the next flush", async () => {
  const fail = { count: 1 };
  const { consumer, commits } = fakeConsumer(fail);
  const c = new Committer(consumer, log, 60_000);
  c.done({ topic: "t", partition: 0, offset: 2 });
  await c.flush();
  assert.equal(commits, []);
  await c.flush();
  assert.equal(commits, [[{ topic: "t", partition: 0, offset: 2 }]]);
});

test("forget() drops revoked partitions; start() commits on an interval", async () => {
  const { consumer, commits } = fakeConsumer();
  const c = new Committer(consumer, log, 20);
  c.done({ topic: "t", partition: 0, offset: 2 });
  c.done({ topic: "t", partition: 1, offset: 7 });
  c.forget(["t/0"]);
  c.start();
  await waitFor(() => commits.length, 2000, "a commit on the interval", 5);
  c.stop();
  assert.equal(commits, [[{ topic: "t", partition: 1, offset: 7 }]]);
});

test.run();
