/**
 * @module What every role shares in one process: configuration, logger, store, bus, metrics,
 * the program's definitions, and the stopping flag.
 */
import { Registry } from "prom-client";
import type { Config } from "./config.ts";
import { createLogger, type Logger } from "./log.ts";
import type { Check, Store } from "./infra/store.ts";
import type { Bus } from "./infra/bus.ts";
import { type RedisOptions, RedisStore } from "./infra/redis.ts";
import { MemoryStore } from "./infra/memory-store.ts";
import { KafkaBus } from "./infra/kafka.ts";
import { MemoryBus } from "./infra/memory-bus.ts";
import { withTopicPrefix } from "./infra/topic-prefix.ts";
import type { Definitions } from "./definitions.ts";

/** A long-running part of a role (an HTTP server, a consumer loop, a worker pool). */
export interface Service {
  /** For logs and readiness checks. */
  readonly name: string;
  /** Starts the service; resolves once it runs. */
  start(): Promise<void>;
  /**
   * Stops it: finish or hand back in-flight work before `deadline` (epoch ms), then release
   * what it holds. Never throws.
   */
  stop(deadline: number): Promise<void>;
  /** Readiness of this service itself (e.g. "in its consumer group"); absent = always ready. */
  check?(): Promise<Check>;
}

/**
 * The runtime's Prometheus registry, what `/metrics` serves (prom-client's `Registry`; the
 * runtime registers its own metrics on it).
 */
export interface MetricsRegistry {
  /**
   * Formats every metric.
   *
   * @returns the text exposition format
   */
  metrics(): Promise<string>;
  /** The content type of {@link MetricsRegistry.metrics}'s text. */
  readonly contentType: string;
  /**
   * Finds one metric.
   *
   * @param name its name (`tasks_total`)
   * @returns the metric, or undefined
   */
  getSingleMetric(name: string): RegisteredMetric | undefined;
}

/** A metric of a {@link MetricsRegistry}. */
export interface RegisteredMetric {
  /**
   * Reads the metric.
   *
   * @returns its current values
   */
  get(): Promise<MetricValues>;
}

/** A metric's current values. */
export interface MetricValues {
  /** The metric's name. */
  readonly name: string;
  /** Its help text. */
  readonly help: string;
  /** One sample per label set (a histogram's: `_bucket`, `_sum` and `_count` ones). */
  readonly values: readonly MetricSample[];
}

/** One sample of a metric. */
export interface MetricSample {
  /** The value. */
  readonly value: number;
  /** Its labels. */
  readonly labels: Readonly<Record<string, string | number | undefined>>;
  /** The series' name when it is not the metric's (a histogram's `<name>_count`…). */
  readonly metricName?: string;
}

/**
 * The prom-client registry behind `rt.metrics`, for the runtime's features to register on.
 *
 * @param rt the runtime
 * @returns its registry
 */
export function promRegistry(rt: Runtime): Registry {
  // The one cast: createRuntime makes every runtime's `metrics` a prom-client Registry.
  return rt.metrics as Registry;
}

/** Shared state of one process. */
export interface Runtime {
  /** The validated configuration. */
  readonly config: Config;
  /** The process's logger (JSON lines, with `service` and `instance`). */
  readonly log: Logger;
  /** The store: Redis, or the embedded one. */
  readonly store: Store;
  /**
   * The message bus. `publish` and `ensureTopics` take topic names without `TOPIC_PREFIX`
   * and add it; group consumers subscribe by full name (see {@link Runtime.topic}).
   */
  readonly bus: Bus;
  /**
   * The full name of a topic: `TOPIC_PREFIX` + `name`.
   *
   * @param name the topic's name in the program (`orders`)
   * @returns its name on the broker (`<prefix>orders`)
   */
  topic(name: string): string;
  /** This runtime's Prometheus registry (not the global one: tests run several runtimes). */
  readonly metrics: MetricsRegistry;
  /** The program's definitions (tasks, consumers, schedules, parallel tasks). */
  readonly system: Definitions;
  /** Process-unique id, for logs, run records and leases. */
  readonly instanceId: string;
  /** True from the moment SIGTERM/SIGINT arrives (readiness turns 503). */
  stopping: boolean;
}

/**
 * Makes a typed accessor of a per-runtime instance: `create` runs once per runtime, on first
 * use. Features make their clients and metrics with it, so each exists once per runtime (and a
 * test's second runtime gets its own).
 *
 * @param create makes the instance for a runtime
 * @returns the accessor
 * @example
 * ```ts
 * export const taskClient = perRuntime((rt) => new TaskClient(rt));
 * ```
 */
export function perRuntime<T>(create: (rt: Runtime) => T): (rt: Runtime) => T {
  const made = new WeakMap<Runtime, { value: T }>();
  return (rt) => {
    let entry = made.get(rt);
    if (!entry) made.set(rt, entry = { value: create(rt) });
    return entry.value;
  };
}

/** Options for tests: inject a store, a bus or a logger. */
export interface RuntimeOptions {
  /** The store to use instead of Redis or the embedded one. */
  store?: Store;
  /** The bus to use instead of Kafka or the embedded one (`TOPIC_PREFIX` still applies). */
  bus?: Bus;
  /** The logger to use. */
  log?: Logger;
}

/**
 * The store options of the configuration (also sent to the tasks' lease thread).
 *
 * @param config the validated configuration
 * @returns CA and replica waits
 */
export function redisOptions(config: Config): RedisOptions {
  return {
    ca: config.redisTlsCa,
    waitReplicas: config.redisWaitReplicas,
    waitTimeoutMs: config.redisWaitTimeoutMs,
  };
}

/**
 * Creates the runtime: real Redis/Kafka when configured, embedded otherwise.
 *
 * @param config the validated configuration
 * @param system the program's definitions
 * @param options injected parts (tests)
 * @returns the runtime
 * @example
 * ```ts
 * const rt = createRuntime(loadConfig(), new System());
 * ```
 */
export function createRuntime(
  config: Config,
  system: Definitions,
  options: RuntimeOptions = {},
): Runtime {
  const instanceId = `${Deno.hostname?.() ?? "host"}-${Deno.pid}-${
    crypto.randomUUID().slice(0, 8)
  }`;
  const log = options.log ??
    createLogger(config.logLevel, { service: config.serviceName, instance: instanceId });
  const store = options.store ??
    (config.redisUrl
      ? new RedisStore(config.redisUrl, log, redisOptions(config))
      : new MemoryStore());
  const bus = withTopicPrefix(
    options.bus ??
      (config.kafkaBrokers
        ? new KafkaBus(config.kafkaBrokers, log, {
          clientId: config.serviceName,
          settings: config.kafka,
        })
        : new MemoryBus()),
    config.topicPrefix,
  );
  return {
    config,
    log,
    store,
    bus,
    metrics: new Registry(),
    system,
    instanceId,
    stopping: false,
    topic: (name) => config.topicPrefix + name,
  };
}
