/**
 * @module Unit-testing helpers for the handlers of a program, without Redis or Kafka: an
 * in-memory runtime, and a manual clock for schedules. Import from `@svc/runtime/testing`.
 */
import { loadConfig } from "./config.ts";
import { createLogger } from "./log.ts";
import { createRuntime, type Runtime } from "./runtime.ts";
import { System } from "./system.ts";

export { type Clock, ManualClock } from "./async/clock.ts";

/** Options of {@link testRuntime}. */
export interface TestRuntimeOptions {
  /** The program's definitions and routes (an empty system by default). */
  system?: System;
  /**
   * Environment as the program would read it (`KEY_PREFIX`, `TOPIC_PREFIX`,
   * `SCHEDULE_<NAME>_CRON`…). `REDIS_URL` and `KAFKA_BROKERS` are ignored: the store and bus
   * are always the embedded ones. `LOG_LEVEL` defaults to `warn`.
   */
  env?: Record<string, string>;
}

/** An in-memory runtime; `close()` releases it. */
export interface TestRuntime extends Runtime {
  /** Closes the embedded store and bus. */
  close(): Promise<void>;
}

/**
 * Creates a runtime on the embedded store and bus, as `ROLE=all` without `REDIS_URL` or
 * `KAFKA_BROKERS` would run: the same atomic operations and semantics as Redis and Kafka,
 * living as long as the runtime.
 *
 * @param options the system and environment
 * @returns the runtime; call `close()` when done
 * @example
 * ```ts
 * import { testRuntime } from "@svc/runtime/testing";
 *
 * await using rt = testRuntime({ env: { KEY_PREFIX: "unit" } });
 * await rt.store.command(["SET", "unit:greeting", "hello"]);
 * console.assert(await rt.store.command(["GET", "unit:greeting"]) === "hello");
 * ```
 */
export function testRuntime(options: TestRuntimeOptions = {}): TestRuntime & AsyncDisposable {
  const { REDIS_URL: _redis, KAFKA_BROKERS: _kafka, ...env } = options.env ?? {};
  const config = loadConfig({ LOG_LEVEL: "warn", ...env });
  const rt = createRuntime(config, options.system ?? new System(), {
    log: createLogger(config.logLevel, { test: true }),
  });
  const close = async () => {
    rt.stopping = true;
    await Promise.allSettled([rt.bus.close(), rt.store.close()]);
  };
  return Object.assign(rt, { close, [Symbol.asyncDispose]: close });
}
