import { test } from "uvu";
import * as assert from "uvu/assert";
import { Counter, Histogram, Registry } from "prom-client";
import { CheapCounter, CheapHistogram } from "../../src/infra/metrics.ts";

const BUCKETS = [0.001, 0.01, 0.1, 1];
const SAMPLES: [string, string, number][] = [
  ["GET", "/a", 0.0005],
  ["GET", "/a", 0.001],
  ["GET", "/a", 0.05],
  ["POST", "/b", 3],
  ["GET", "/a", 0.2],
];

test("the cheap counter and histogram expose exactly what prom-client's would", async () => {
  const theirs = new Registry(), ours = new Registry();
  const c1 = new Counter({
    name: "x_total",
    help: "h",
    labelNames: ["m", "r"],
    registers: [theirs],
  });
  const h1 = new Histogram({
    name: "x_seconds",
    help: "h",
    labelNames: ["m", "r"],
    buckets: BUCKETS,
    registers: [theirs],
  });
  const c2 = new CheapCounter("x_total", "h", ["m", "r"], ours);
  const h2 = new CheapHistogram("x_seconds", "h", ["m", "r"], BUCKETS, ours);
  for (const [m, r, v] of SAMPLES) {
    c1.inc({ m, r });
    h1.observe({ m, r }, v);
    c2.child(m, r).inc();
    h2.child(m, r).observe(v);
  }
  assert.is(await ours.metrics(), await theirs.metrics());
  const single = await ours.getSingleMetric("x_total")?.get();
  assert.equal(single?.values.map((v) => v.value), [4, 1]);
  ours.resetMetrics();
  assert.not.match(await ours.metrics(), /x_total\{/);
});

test("a child is one record per label set; a wrong label count throws", () => {
  const c = new CheapCounter("y_total", "h", ["a"], new Registry());
  assert.is(c.child("1"), c.child("1"));
  assert.throws(() => c.child("1", "2"), /takes 1 label/);
});

test.run();
