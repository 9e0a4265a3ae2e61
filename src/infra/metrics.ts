/**
 * @module Counters and histograms for hot paths, served by the runtime's prom-client registry.
 *
 * prom-client validates and hashes the label set on every `inc`/`observe`, even through a
 * `labels()` child: about a microsecond per call, a measurable part of a fast HTTP request or a
 * no-op task. These keep one record per label set, looked up once (`child(...)`); a call is then
 * an addition, and the work of the exposition format moves to the scrape. They register on a
 * prom-client `Registry` as ordinary metrics (`get()`, `reset()`), so `/metrics` and
 * `getSingleMetric()` read them like any other.
 */
import type { Metric, Registry } from "prom-client";

/** The value shape prom-client's registry formats. */
interface _Value {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/** What the registry reads from a metric. */
interface _Data {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  values: _Value[];
  aggregator: "sum";
}

abstract class _Cheap<C> {
  readonly aggregator = "sum" as const;
  abstract readonly type: _Data["type"];
  protected children = new Map<string, C>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    registry: Registry,
  ) {
    registry.registerMetric(this as unknown as Metric);
  }

  protected labelsOf(values: readonly string[]): Record<string, string> {
    if (values.length !== this.labelNames.length) {
      throw new Error(`${this.name} takes ${this.labelNames.length} label values`);
    }
    const labels: Record<string, string> = {};
    this.labelNames.forEach((name, i) => (labels[name] = values[i]));
    return labels;
  }

  /** Forgets every label set (prom-client's `registry.resetMetrics()` calls it). */
  reset(): void {
    this.children.clear();
  }

  /**
   * What the registry reads.
   *
   * @returns name, help, type and the {@link _Cheap.values}
   */
  get(): Promise<_Data> {
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      values: this.values(),
      aggregator: this.aggregator,
    });
  }

  /** The metric's values, in prom-client's shape. */
  protected abstract values(): _Value[];
}

/** One label set of a {@link CheapCounter}. */
export interface CounterChild {
  inc(by?: number): void;
}

/** One label set of a {@link CheapGauge}. */
export interface GaugeChild extends CounterChild {
  dec(by?: number): void;
}

type _ValueState = GaugeChild & { labels: Record<string, string>; value: number };

/** A metric of one number per label set: counters and gauges. */
abstract class _Valued<C extends CounterChild> extends _Cheap<_ValueState> {
  /**
   * The record of one label set (made on first use; keep it).
   *
   * @param values label values, in the order of `labelNames`
   * @returns its record
   */
  child(...values: string[]): C {
    const id = values.join("\u0000");
    let child = this.children.get(id);
    if (!child) {
      const c: _ValueState = {
        labels: this.labelsOf(values),
        value: 0,
        inc(by = 1) {
          c.value += by;
        },
        dec(by = 1) {
          c.value -= by;
        },
      };
      this.children.set(id, child = c);
    }
    return child as unknown as C; // a counter hands out the same record without its dec
  }

  /**
   * One value per label set.
   *
   * @returns the values
   */
  protected values(): _Value[] {
    const values: _Value[] = [];
    for (const c of this.children.values()) values.push({ labels: c.labels, value: c.value });
    return values;
  }
}

/** A counter; `child(...values)` once per label set, then `inc()` is one addition. */
export class CheapCounter extends _Valued<CounterChild> {
  readonly type = "counter" as const;
}

/** A gauge; `child(...values)` once per label set, then `inc()`/`dec()` are one addition. */
export class CheapGauge extends _Valued<GaugeChild> {
  readonly type = "gauge" as const;
}

/** One label set of a {@link CheapHistogram}. */
export interface HistogramChild {
  observe(value: number): void;
}

interface _HistogramState extends HistogramChild {
  labels: Record<string, string>;
  /** Per bucket (not cumulative), the last one is +Inf. */
  counts: Float64Array;
  sum: number;
  count: number;
}

/** A histogram; `child(...values)` once per label set, then `observe()` is a bucket search. */
export class CheapHistogram extends _Cheap<_HistogramState> {
  readonly type = "histogram" as const;
  readonly #bounds: Float64Array;

  /**
   * @param name metric name
   * @param help help text
   * @param labelNames label names
   * @param buckets upper bounds, ascending (+Inf is added)
   * @param registry where it is served
   */
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    buckets: readonly number[],
    registry: Registry,
  ) {
    super(name, help, labelNames, registry);
    this.#bounds = Float64Array.from(buckets);
  }

  /**
   * The histogram of one label set (made on first use; keep it).
   *
   * @param values label values, in the order of `labelNames`
   * @returns its histogram
   */
  child(...values: string[]): HistogramChild {
    const id = values.join("\u0000");
    let child = this.children.get(id);
    if (!child) {
      const bounds = this.#bounds;
      const h: _HistogramState = {
        labels: this.labelsOf(values),
        counts: new Float64Array(bounds.length + 1),
        sum: 0,
        count: 0,
        observe(value: number) {
          let i = 0;
          while (i < bounds.length && value > bounds[i]) i++;
          h.counts[i]++;
          h.sum += value;
          h.count++;
        },
      };
      this.children.set(id, child = h);
    }
    return child;
  }

  /**
   * prom-client's histogram shape: cumulative `_bucket` values with `le`, then `_sum` and
   * `_count`.
   *
   * @returns the values
   */
  protected values(): _Value[] {
    const values: _Value[] = [];
    for (const h of this.children.values()) {
      let cumulative = 0;
      for (let i = 0; i <= this.#bounds.length; i++) {
        cumulative += h.counts[i];
        values.push({
          labels: { le: i < this.#bounds.length ? this.#bounds[i] : "+Inf", ...h.labels },
          value: cumulative,
          metricName: `${this.name}_bucket`,
        });
      }
      values.push({ labels: h.labels, value: h.sum, metricName: `${this.name}_sum` });
      values.push({ labels: h.labels, value: h.count, metricName: `${this.name}_count` });
    }
    return values;
  }
}
