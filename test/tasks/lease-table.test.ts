import { test } from "uvu";
import * as assert from "uvu/assert";
import { LeaseTable } from "../../src/tasks/lease-table.ts";

test("LeaseTable: a reader on the same buffer sees what the writer put and removed", () => {
  const writer = new LeaseTable(4);
  const reader = new LeaseTable(writer.buffer);
  assert.ok(writer.put("t_a", "w.1/1", 1000));
  assert.ok(writer.put("t_b", "w.2/1", 2000));
  assert.equal(reader.read().sort((x, y) => x.refcode.localeCompare(y.refcode)), [
    { refcode: "t_a", token: "w.1/1", until: 1000 },
    { refcode: "t_b", token: "w.2/1", until: 2000 },
  ]);
  writer.remove("t_a", "w.1/1");
  writer.remove("t_a", "unknown");
  assert.is(reader.read().length, 1);
  assert.is(writer.size, 1);
});

test("LeaseTable: keys runs by refcode and token (a token is shared by a claimed batch)", () => {
  const writer = new LeaseTable(4);
  writer.put("t_a", "w.1/1", 1000);
  writer.put("t_b", "w.1/1", 1000);
  writer.put("t_a", "w.2/2", 3000);
  writer.remove("t_a", "w.1/1");
  assert.equal(new LeaseTable(writer.buffer).read().sort((x, y) => x.until - y.until), [
    { refcode: "t_b", token: "w.1/1", until: 1000 },
    { refcode: "t_a", token: "w.2/2", until: 3000 },
  ]);
  writer.remove("t_b", "w.1/1");
  assert.is(writer.size, 1);
});

test("LeaseTable: put() refuses when full or when the text does not fit", () => {
  const writer = new LeaseTable(2);
  assert.ok(writer.put("t_a", "x", 1));
  assert.ok(writer.put("t_b", "x2", 1));
  assert.not.ok(writer.put("t_c", "x3", 1));
  writer.remove("t_a", "x");
  assert.not.ok(writer.put("t_c", "y".repeat(300), 1));
  assert.ok(writer.put("t_c", "x3", 1));
  assert.is(new LeaseTable(writer.buffer).read().length, 2);
});

test.run();
