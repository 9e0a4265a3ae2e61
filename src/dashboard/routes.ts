/**
 * @module `GET /dashboard` and its live stream `GET /dashboard/stream` (server-sent events).
 */
import { streamSSE } from "hono/streaming";
import type { RouteModule } from "../http/env.ts";
import { collectSnapshot } from "./snapshot.ts";
import { renderLogin, renderPage, renderSections } from "./render.ts";

/** The dashboard is loaded by browsers: its GETs take the API key from a cookie too. */
export const DASHBOARD_AREA = {
  prefix: "/dashboard",
  cookie: "svc_api_key",
  loginPage: renderLogin,
} as const;

/** How often the stream sends fresh sections. */
export const STREAM_INTERVAL_MS = 1000;

/**
 * The dashboard (role `http`, behind `API_KEYS` like the rest of the API).
 *
 * @param app the Hono app
 * @param rt the runtime
 */
export const dashboardRoutes: RouteModule = (app, rt) => {
  app.get("/dashboard", async (c) => c.html(renderPage(renderSections(await collectSnapshot(rt)))));

  app.get("/dashboard/stream", (c) =>
    streamSSE(c, async (stream) => {
      while (!stream.aborted && !rt.stopping) {
        try {
          const sections = String(await renderSections(await collectSnapshot(rt)));
          await stream.writeSSE({ event: "sections", data: sections.replaceAll("\n", " ") });
        } catch (err) {
          await stream.writeSSE({
            event: "error",
            data: err instanceof Error ? err.message : String(err),
          });
        }
        await stream.sleep(STREAM_INTERVAL_MS);
      }
    }));
};
