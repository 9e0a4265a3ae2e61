/**
 * @module Start-up and shutdown of one process: configuration, roles, HTTP server, signals.
 */
import { ConfigError, loadConfig, redactUrl, type Role } from "./config.ts";
import { createApp } from "./app.ts";
import { settleBy } from "./async/deadline.ts";
import { validateSchedules } from "./scheduler/overrides.ts";
import { availableRoles, ROLE_FACTORIES, RoleUnavailableError, STOP_ORDER } from "./roles.ts";
import { createRuntime, type Runtime, type RuntimeOptions, type Service } from "./runtime.ts";
import type { System } from "./system.ts";

/** A running process: its runtime, the port it listens on, and how to stop it. */
export interface Running {
  /** The process's runtime. */
  rt: Runtime;
  /** The port the HTTP server listens on. */
  port: number;
  /** Stops everything in the documented order; resolves when done. */
  shutdown(reason: string): Promise<void>;
  /** Resolves once shutdown finished. */
  finished: Promise<void>;
  /**
   * Resolves once every service has started (the port is open before: start-up never waits for
   * Redis or Kafka); a service that failed to start is logged and named by `/readyz`.
   */
  started: Promise<void>;
}

/** Exit code for bad configuration (API.md). */
export const EXIT_CONFIG = 2;

/**
 * Starts the roles of `ROLE` for a system.
 *
 * @param system the program's definitions and routes
 * @param env the environment (defaults to the process's)
 * @param options injected store/bus/logger (tests)
 * @returns the running process
 * @throws {ConfigError} on a bad environment value
 * @throws {RoleUnavailableError} when a role named in `ROLE` is not built
 */
export async function start(
  system: System,
  env: Record<string, string | undefined> = Deno.env.toObject(),
  options: RuntimeOptions = {},
): Promise<Running> {
  const config = loadConfig(env);
  // Every role checks SCHEDULE_<NAME>_CRON, so a typo stops any process, not only schedulers.
  validateSchedules(system, config);
  const rt = createRuntime(config, system, options);
  const log = rt.log.child({ component: "main" });
  let services: { role: string; service: Service }[] = [];
  let roles: Role[] = [];
  try {
    roles = availableRoles(config.roles, config.rolesExplicit, rt);
    services = roles.flatMap((role) =>
      ROLE_FACTORIES[role]!(rt).map((service) => ({ role, service }))
    );
  } catch (err) {
    await Promise.allSettled([rt.store.close(), rt.bus.close()]);
    throw err;
  }
  const api = config.roles.includes("http");
  if (config.apiKeys.length === 0 && api) log.warn("API_KEYS is unset: the API is open to anyone");
  // The port opens before any service starts, so /healthz answers from the first second even
  // while Redis or Kafka cannot be reached; /readyz names what has not started yet.
  const started: { role: string; service: Service }[] = [];
  const startup: Service = {
    name: "startup",
    start: () => Promise.resolve(),
    stop: () => Promise.resolve(),
    check: () => {
      const pending = services.filter((s) => !started.includes(s)).map((s) => s.service.name);
      return Promise.resolve(
        pending.length ? { ok: false, detail: `starting: ${pending.join(", ")}` } : { ok: true },
      );
    },
  };
  const app = createApp(rt, {
    api,
    services: () => [
      ...started.map((s) => s.service),
      ...(started.length < services.length ? [startup] : []),
    ],
    routes: system.routeModules,
  });
  const server = Deno.serve(
    { port: config.port, hostname: config.host, onListen: () => {} },
    app.fetch,
  );
  const port = server.addr.port;
  log.info("listening", {
    host: config.host,
    port,
    roles,
    redis: config.redisUrl ? redactUrl(config.redisUrl) : "embedded",
    kafka: config.kafkaBrokers ? config.kafkaBrokers.join(",") : "embedded",
  });
  let aborted = false;
  const starting = (async () => {
    for (const entry of services) {
      if (aborted) return;
      try {
        await entry.service.start();
        started.push(entry);
        log.debug("service started", { role: entry.role, service: entry.service.name });
      } catch (err) {
        // Readiness keeps naming it; the process stays up for its probes and logs.
        log.error("service failed to start", { service: entry.service.name, error: err });
        return;
      }
    }
  })();

  let resolveFinished!: () => void;
  const finished = new Promise<void>((resolve) => (resolveFinished = resolve));
  let stopping: Promise<void> | undefined;

  const shutdown = (reason: string) => {
    stopping ??= (async () => {
      rt.stopping = true;
      aborted = true;
      // A margin under the timeout so the process exits before an orchestrator's kill.
      const deadline = Date.now() + Math.max(100, config.shutdownTimeoutMs - 500);
      log.info("shutting down", { reason, timeout_ms: config.shutdownTimeoutMs });
      // The API stops first so no new work arrives; the probe-only server of worker roles stays
      // up (answering 503 on /readyz) until their work is handed back.
      if (api && !(await settleBy(server.shutdown(), deadline))) {
        log.warn("in-flight requests did not finish before the deadline");
      }
      // A service still starting is stopped once its start ends (or not at all past the
      // deadline).
      await settleBy(starting, deadline);
      for (const role of STOP_ORDER) {
        await Promise.all(
          started.filter((s) => s.role === role).map(({ service }) =>
            service.stop(deadline).catch((err) =>
              log.error("service stop failed", { service: service.name, error: err })
            )
          ),
        );
      }
      if (!api) await settleBy(server.shutdown(), deadline);
      await settleBy(Promise.allSettled([rt.bus.close(), rt.store.close()]), deadline + 400);
      log.info("stopped", { reason });
      resolveFinished();
    })();
    return stopping;
  };
  return { rt, port, shutdown, finished, started: starting };
}

/**
 * Runs the program until SIGTERM/SIGINT: the entry point of `mod.ts`.
 *
 * @param system the program's definitions and routes
 * @returns the exit code: 0 after a clean stop, 2 for bad configuration
 */
export async function main(system: System): Promise<number> {
  let running: Running;
  try {
    running = await start(system);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof RoleUnavailableError) {
      console.error(err.message);
      return EXIT_CONFIG;
    }
    throw err;
  }
  const onSignal = (signal: Deno.Signal) => () => void running.shutdown(signal);
  Deno.addSignalListener("SIGTERM", onSignal("SIGTERM"));
  Deno.addSignalListener("SIGINT", onSignal("SIGINT"));
  await running.finished;
  return 0;
}
