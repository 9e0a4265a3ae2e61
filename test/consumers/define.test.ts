import { test } from "uvu";
import * as assert from "uvu/assert";
import * as v from "valibot";
import {
  BULK_CONSUMERS,
  CONSUMERS,
  defineBulkConsumer,
  defineConsumer,
} from "../../src/consumers/define.ts";
import { System } from "../../src/system.ts";

const handler = () => Promise.resolve();

test("defineConsumer() and defineBulkConsumer() make definitions of their kinds", () => {
  const c = defineConsumer({ name: "orders", topic: "orders", schema: v.unknown(), handler });
  const b = defineBulkConsumer({ name: "events", topic: "events", schema: v.unknown(), handler });
  assert.is(c.kind, "consumer");
  assert.is(b.kind, "bulk-consumer");
  const system = new System().add(c, b);
  assert.is(system.get(CONSUMERS, "orders"), c);
  assert.is(system.get(BULK_CONSUMERS, "events"), b);
});

test("define*() reject bad names, topics and bounds", () => {
  assert.throws(
    () => defineConsumer({ name: "a b", topic: "t", schema: v.unknown(), handler }),
    /name "a b"/,
  );
  assert.throws(
    () => defineConsumer({ name: "a", topic: "t/x", schema: v.unknown(), handler }),
    /Topic "t\/x"/,
  );
  assert.throws(
    () => defineConsumer({ name: "a", topic: "t", schema: v.unknown(), handler, maxAttempts: 0 }),
    /maxAttempts/,
  );
  assert.throws(
    () =>
      defineBulkConsumer({ name: "a", topic: "t", schema: v.unknown(), handler, maxBatchSize: 0 }),
    /maxBatchSize/,
  );
});

test.run();
