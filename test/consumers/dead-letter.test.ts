import { test } from "uvu";
import * as assert from "uvu/assert";
import { deadLetterMessage, DLQ_HEADERS } from "../../src/consumers/dead-letter.ts";

test("deadLetterMessage() keeps key, value and headers and adds why and where from", () => {
  const m = deadLetterMessage({
    record: {
      topic: "p.orders",
      partition: 2,
      offset: 41,
      key: "o-1",
      value: "{bad",
      headers: { trace: "abc" },
      timestamp: 1700000000000,
      size: 8,
    },
    error: new TypeError("x is not a function"),
    reason: "handler",
    attempts: 5,
  }, "orders");
  assert.is(m.key, "o-1");
  assert.is(m.value, "{bad");
  assert.is(m.headers!.trace, "abc");
  assert.is(m.headers![DLQ_HEADERS.error], "TypeError: x is not a function");
  assert.is(m.headers![DLQ_HEADERS.reason], "handler");
  assert.is(m.headers![DLQ_HEADERS.attempts], "5");
  assert.is(m.headers![DLQ_HEADERS.originalTopic], "p.orders");
  assert.is(m.headers![DLQ_HEADERS.originalPartition], "2");
  assert.is(m.headers![DLQ_HEADERS.originalOffset], "41");
  assert.is(m.headers![DLQ_HEADERS.originalTimestamp], "1700000000000");
  assert.is(m.headers![DLQ_HEADERS.consumer], "orders");
  assert.ok(!Number.isNaN(Date.parse(m.headers![DLQ_HEADERS.failedAt])));
});

test("deadLetterMessage() bounds the error text and handles a missing value", () => {
  const m = deadLetterMessage({
    record: {
      topic: "t",
      partition: 0,
      offset: 0,
      key: null,
      value: null,
      headers: {},
      timestamp: 0,
      size: 0,
    },
    error: "x".repeat(10_000),
    reason: "schema",
    attempts: 0,
  }, "c");
  assert.is(m.value, "");
  assert.is(m.headers![DLQ_HEADERS.error].length, 2000);
});

test.run();
