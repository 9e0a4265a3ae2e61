import { test } from "uvu";
import * as assert from "uvu/assert";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { CheapCounter, CheapGauge, CheapHistogram } from "../../src/infra/metrics.ts";

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

test("the cheap gauge exposes exactly what prom-client's would", async () => {
  const theirs = new Registry(), ours = new Registry();
  const g1 = new Gauge({ name: "x_running", help: "h", labelNames: ["t"], registers: [theirs] });
  const g2 = new CheapGauge("x_running", "h", ["t"], ours);
  for (const [t, by] of [["a", 1], ["b", 1], ["a", 1], ["a", -1], ["b", -1], ["c", 3]] as const) {
    if (by > 0) g1.inc({ t }, by);
    else g1.dec({ t }, -by);
    if (by > 0) g2.child(t).inc(by);
    else g2.child(t).dec(-by);
  }
  assert.is(await ours.metrics(), await theirs.metrics());
  assert.match(await ours.metrics(), /x_running\{t="a"\} 1\n/);
});

test("a child is one record per label set; a wrong label count throws", () => {
  const c = new CheapCounter("y_total", "h", ["a"], new Registry());
  assert.is(c.child("1"), c.child("1"));
  assert.throws(() => c.child("1", "2"), /takes 1 label/);
});

test.run();
