import { test } from "uvu";
import * as assert from "uvu/assert";
import * as v from "valibot";
import { clusterSlot, hashTag } from "../../src/infra/store.ts";
import { shardIndex, TASK_SHARDS, taskKeys, typeShards } from "../../src/tasks/keys.ts";
import { defineTask } from "../../src/tasks/define.ts";
import { System } from "../../src/system.ts";
import { taskClient } from "../../src/tasks/client.ts";
import { cleanup, testRuntime } from "../helpers.ts";

test.after(cleanup);

test("taskKeys() puts KEY_PREFIX inside each shard's tag and the shards in distinct quarters", () => {
  for (const prefix of ["svc", "team-a", "t-1234"]) {
    const keys = taskKeys(prefix);
    assert.is(keys.shards.length, TASK_SHARDS);
    const quarters = keys.shards.map((s) => {
      assert.ok(s.active.startsWith(`${prefix}:{${prefix}:tasks:${s.index}`), s.active);
      // Every key of a shard is in its slot.
      const slot = clusterSlot(s.active);
      for (const k of [s.pending("x"), s.scheduled("x"), s.status("failed"), s.record("t_a")]) {
        assert.is(clusterSlot(k), slot, k);
      }
      return Math.floor(slot / (16384 / TASK_SHARDS));
    });
    assert.equal(quarters, [0, 1, 2, 3]);
    // On 3 masters with equal ranges: the first, the middle one twice, the last.
    const master = (slot: number) => slot <= 5460 ? 0 : slot <= 10922 ? 1 : 2;
    assert.equal(keys.shards.map((s) => master(clusterSlot(s.active))), [0, 1, 1, 2]);
    assert.is.not(hashTag(keys.shards[0].active), hashTag(taskKeys(`${prefix}x`).shards[0].active));
  }
});

test("typeShards() spreads a type over evenly spaced shards", () => {
  assert.equal(typeShards("sleep", TASK_SHARDS), [0, 1, 2, 3]);
  assert.is(typeShards("sleep", 1).length, 1);
  assert.is(new Set(typeShards("sleep", 2).map((s) => s % 2)).size, 1);
});

test("enqueue() places a one-shard type's tasks in its shard, and an idempotency key's in one", async () => {
  const one = defineTask({ name: "one", input: v.unknown(), shards: 1, handler: () => 1 });
  const all = defineTask({ name: "all", input: v.unknown(), handler: () => 1 });
  const rt = testRuntime({ system: new System().add(one, all) });
  const client = taskClient(rt);
  const [home] = typeShards("one", 1);
  const seen = new Set<number>();
  for (let i = 0; i < 40; i++) {
    assert.is(shardIndex((await client.enqueue(one, {})).refcode), home);
    seen.add(shardIndex((await client.enqueue(all, {})).refcode));
  }
  assert.is(seen.size, TASK_SHARDS);
  const a = await client.enqueue(all, { n: 1 }, { idempotencyKey: "k" });
  const b = await client.enqueue(all, { n: 1 }, { idempotencyKey: "k" });
  assert.equal([b.refcode, b.created], [a.refcode, false]);
});

test("defineTask() takes shards from 1 to 4", () => {
  assert.is(defineTask({ name: "x", input: v.unknown(), handler: () => 1 }).shards, 4);
  for (const shards of [0, 5, 1.5]) {
    assert.throws(() => defineTask({ name: "x", input: v.unknown(), shards, handler: () => 1 }));
  }
});

test.run();
