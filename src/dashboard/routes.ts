/**
 * @module `GET /dashboard` and its live stream `GET /dashboard/stream` (server-sent events).
 */
import { streamSSE } from "hono/streaming";
import * as v from "valibot";
import { describeRoute } from "hono-openapi";
import type { AppRoutes } from "../http/env.ts";
import type { BrowserArea } from "../http/app.ts";
import { isKey, overHttps, sessionCookie, sessionFor } from "../http/auth.ts";
import { problem } from "../http/problem.ts";
import { problemResponse, validate } from "../http/validate.ts";
import { collectSnapshot } from "./snapshot.ts";
import { renderLogin, renderPage, renderSections } from "./render.ts";

/** The dashboard's log-in and log-out: open routes (they only set or clear the session cookie). */
export const DASHBOARD_SESSION_PATHS: ReadonlySet<string> = new Set([
  "/dashboard/login",
  "/dashboard/logout",
]);

/** The dashboard is loaded by browsers: its pages take the session cookie. */
export const DASHBOARD_AREA: BrowserArea = {
  prefix: "/dashboard",
  openPaths: DASHBOARD_SESSION_PATHS,
  loginPage: (rt) => renderLogin(rt.config.serviceName),
};

const Login = v.strictObject({ key: v.pipe(v.string(), v.minLength(1), v.maxLength(1024)) });

/** How often the stream sends fresh sections. */
export const STREAM_INTERVAL_MS = 1000;

/**
 * The dashboard (role `http`, behind `API_KEYS` like the rest of the API).
 *
 * @param app the Hono app
 * @param rt the runtime
 */
export const dashboardRoutes: AppRoutes = (app, rt) => {
  app.post(
    "/dashboard/login",
    describeRoute({
      tags: ["dashboard"],
      summary: "Open a dashboard session: an HttpOnly cookie that is not the key",
      responses: {
        204: { description: "Logged in: Set-Cookie svc_session" },
        400: problemResponse("No key"),
        401: problemResponse("The key is not valid"),
      },
    }),
    validate("json", Login),
    async (c) => {
      const keys = rt.config.apiKeys;
      if (keys.length === 0) return c.body(null, 204);
      const { key } = c.req.valid("json");
      if (!isKey(key, keys)) return problem(c, 401, "The API key is not valid");
      c.header("set-cookie", sessionCookie(await sessionFor(key), overHttps(c)));
      return c.body(null, 204);
    },
  );

  app.post(
    "/dashboard/logout",
    describeRoute({
      tags: ["dashboard"],
      summary: "End the dashboard session (clears its cookie)",
      responses: { 204: { description: "Logged out" } },
    }),
    (c) => {
      c.header("set-cookie", sessionCookie("", overHttps(c)));
      return c.body(null, 204);
    },
  );

  app.get("/dashboard", async (c) =>
    c.html(
      renderPage(rt.config.serviceName, renderSections(await collectSnapshot(rt)), {
        session: rt.config.apiKeys.length > 0,
      }),
    ));

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
