/**
 * @module The program's HTTP app, composed above the HTTP kit: the features' own routes (tasks,
 * parallel tasks, schedules, consumers, dashboard) and then the program's.
 */
import type { Hono } from "hono";
import { createHttpApp } from "./http/app.ts";
import type { AppEnv, AppRoutes } from "./http/env.ts";
import type { RouteModule, Routes } from "./http/routes.ts";
import type { Runtime, Service } from "./runtime.ts";
import { consumerRoutes } from "./consumers/routes.ts";
import { DASHBOARD_AREA, dashboardRoutes } from "./dashboard/routes.ts";
import { parallelRoutes } from "./parallel/routes.ts";
import { scheduleRoutes } from "./scheduler/routes.ts";
import { taskRoutes } from "./tasks/routes.ts";

/** Routes of the runtime's own features, served before the program's. */
export const BUILTIN_ROUTES: readonly AppRoutes[] = [
  taskRoutes,
  parallelRoutes,
  scheduleRoutes,
  consumerRoutes,
  dashboardRoutes,
];

/**
 * A program's route module on the Hono app, which `Routes` names a part of.
 *
 * @param routes the program's module
 * @returns it, taking the app as Hono's
 */
function _onHono(routes: RouteModule): AppRoutes {
  return (app, rt) => routes(app as unknown as Routes, rt);
}

/** What `createApp` needs besides the runtime. */
export interface AppOptions {
  /** Serve the API (role `http`); otherwise only probes and metrics. */
  api: boolean;
  /** The services running in this process, for `/readyz`. */
  services: () => readonly Service[];
  /** The program's own routes (`system.routeModules`), after the built-in ones. */
  routes: readonly RouteModule[];
  /** Longest wait for a request body; default 30 s. */
  bodyTimeoutMs?: number;
}

/**
 * Builds the app: the built-in routes, then the program's.
 *
 * @param rt the runtime
 * @param options API or probes only, the running services, the program's routes
 * @returns the Hono app, ready for `Deno.serve` or `app.request()`
 * @example
 * ```ts
 * const app = createApp(rt, { api: true, services: () => [], routes: system.routeModules });
 * const res = await app.request("/healthz");
 * ```
 */
export function createApp(rt: Runtime, options: AppOptions): Hono<AppEnv> {
  return createHttpApp(rt, {
    api: options.api,
    services: options.services,
    bodyTimeoutMs: options.bodyTimeoutMs,
    routes: [...BUILTIN_ROUTES, ...options.routes.map(_onHono)],
    // The dashboard's page and stream take the API key from a cookie as well.
    browser: DASHBOARD_AREA,
  });
}
