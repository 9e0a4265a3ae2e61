/**
 * @module The Hono environment shared by every route (request id and the runtime), and the
 * shape of a module of routes.
 */
import type { Hono } from "hono";
import type { Runtime } from "../runtime.ts";

/** Hono's `Env` for this program's app. */
export type AppEnv = {
  Variables: {
    requestId: string;
    rt: Runtime;
    /** Longest wait for a request body (`createApp`'s option; tests shorten it). */
    bodyTimeoutMs?: number;
  };
};

/**
 * Adds routes to the Hono app: a feature's own, or a program's (its `RouteModule`, which sees
 * the app as the runtime's `Routes`).
 */
export type AppRoutes = (app: Hono<AppEnv>, rt: Runtime) => void;
