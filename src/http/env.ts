/**
 * @module The Hono environment shared by every route: request id and the runtime.
 */
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
