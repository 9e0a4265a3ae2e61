import { test } from "uvu";
import * as assert from "uvu/assert";
import { RecordBuffer } from "../../src/consumers/record-buffer.ts";
import type { BusRecord } from "../../src/infra/bus-consumer.ts";

const rec = (partition: number, offset: number, size = 10): BusRecord => ({
  topic: "t",
  partition,
  offset,
  key: null,
  value: "x",
  headers: {},
  timestamp: 0,
  size,
});
const tp = (partition: number) => ({ topic: "t", partition });

function buffer(maxRecords = 100, maxBytes = 1 << 20) {
  const events: string[] = [];
  const b = new RecordBuffer(
    { maxRecords, maxBytes },
    () => events.push("full"),
    () => events.push("drained"),
  );
  return { b, events };
}

test("push() keeps records of owned partitions only and drops redeliveries", () => {
  const { b } = buffer();
  b.assign([tp(0)]);
  b.push([rec(0, 5), rec(0, 6), rec(1, 0)]);
  assert.is(b.count, 2);
  b.push([rec(0, 5), rec(0, 6), rec(0, 7)]);
  assert.is(b.count, 3);
  assert.is(b.bytes, 30);
});

test("take() goes round the partitions, in offset order within each", () => {
  const { b } = buffer();
  b.assign([tp(0), tp(1)]);
  b.push([0, 1, 2, 3].map((o) => rec(0, o)));
  b.push([0, 1].map((o) => rec(1, o)));
  const batch = b.take(4, 1 << 20).map((t) => `${t.record.partition}:${t.record.offset}`);
  assert.equal(batch, ["0:0", "0:1", "1:0", "1:1"]);
  assert.equal(b.take(10, 1 << 20).map((t) => t.record.offset), [2, 3]);
  assert.is(b.count, 0);
});

test("take() bounds bytes but always takes one record", () => {
  const { b } = buffer();
  b.assign([tp(0)]);
  b.push([rec(0, 0, 50), rec(0, 1, 50), rec(0, 2, 50)]);
  assert.is(b.take(10, 120).length, 2);
  assert.is(b.take(10, 10).length, 1);
});

test("the buffer reports full at its bound and drained below half", () => {
  const { b, events } = buffer(4);
  b.assign([tp(0)]);
  b.push([0, 1, 2, 3].map((o) => rec(0, o)));
  assert.equal(events, ["full"]);
  b.take(1, 1 << 20);
  assert.equal(events, ["full"]);
  b.take(1, 1 << 20);
  assert.equal(events, ["full", "drained"]);
});

test("assign() drops revoked partitions' records and changes their epoch", () => {
  const { b } = buffer();
  b.assign([tp(0), tp(1)]);
  b.push([rec(0, 0), rec(0, 1), rec(1, 0)]);
  const taken = b.take(1, 1 << 20)[0];
  assert.ok(b.owns(taken.record, taken.epoch));
  const revoked = b.assign([tp(1)]);
  assert.equal(revoked, ["t/0"]);
  assert.is(b.count, 1);
  assert.not.ok(b.owns(taken.record, taken.epoch));
  assert.not.ok(b.handled(taken.record, 1, taken.epoch));
  // Owned again: a fresh start, records from the committed offset are welcome.
  b.assign([tp(0), tp(1)]);
  b.push([rec(0, 0)]);
  assert.is(b.count, 2);
});

test("claim() gives each partition to one loop at a time; next() takes in order", () => {
  const { b } = buffer();
  b.assign([tp(0), tp(1)]);
  b.push([rec(0, 0), rec(0, 1), rec(1, 0)]);
  const first = b.claim()!;
  const second = b.claim()!;
  assert.is.not(first, second);
  assert.is(b.claim(), undefined);
  const k0 = first === "t/0" ? first : second;
  assert.is(b.next(k0)!.record.offset, 0);
  assert.is(b.next(k0)!.record.offset, 1);
  assert.is(b.next(k0), undefined);
  b.release(first);
  b.release(second);
  assert.is(b.claim(), "t/1", "only partition 1 still has records");
  assert.is(b.claim(), undefined);
});

test("lag() is the high watermark minus the next offset to handle", () => {
  const { b } = buffer();
  b.assign([tp(0), tp(1)]);
  b.push([rec(0, 10), rec(0, 11)]);
  const t = b.take(1, 1 << 20)[0];
  b.handled(t.record, 11, t.epoch);
  assert.equal(
    b.lag([{ topic: "t", partition: 0, offset: 20 }, { topic: "t", partition: 1, offset: 5 }]),
    [
      { topic: "t", partition: 0, offset: 9 },
      { topic: "t", partition: 1, offset: 0 },
    ],
  );
});

test("wait() resolves on push, on wake() and at its deadline", async () => {
  const { b } = buffer();
  b.assign([tp(0)]);
  const pushed = b.wait();
  b.push([rec(0, 0)]);
  await pushed;
  const woken = b.wait();
  b.wake();
  await woken;
  const t0 = Date.now();
  await b.wait(Date.now() + 30);
  assert.ok(Date.now() - t0 >= 25);
});

test.run();
