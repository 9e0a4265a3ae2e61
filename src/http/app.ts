/**
 * @module The HTTP kit's app: middleware, auth, probes, metrics, OpenAPI and problem+json
 * errors around the route modules it is given. It knows no feature: `src/app.ts` composes them.
 */
import { type Context, type ErrorHandler, Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { bodyLimit } from "hono/body-limit";
import { openAPIRouteHandler } from "hono-openapi";
import { loadVendor } from "@standard-community/standard-json";
import { toJsonSchema } from "@valibot/to-json-schema";
import {
  CheapCounter,
  CheapHistogram,
  type CounterChild,
  type HistogramChild,
} from "../infra/metrics.ts";
import { logString, recordWriter } from "../log.ts";
import type { AppEnv, AppRoutes } from "./env.ts";
import { HttpProblem, problem } from "./problem.ts";
import { probeRoutes } from "./probes.ts";
import { bearer, cookie, isKey, isSession, SESSION_COOKIE, SESSION_HEADER } from "./auth.ts";
import { refuseRequest } from "./guard.ts";
import { type Around, RouteChains } from "./router.ts";
import { UnavailableError } from "../infra/store.ts";
import { perRuntime, promRegistry, type Runtime, type Service } from "../runtime.ts";

/** Paths answered without `Authorization`, so probes and scrapers need no key. */
const OPEN_PATHS = new Set(["/healthz", "/readyz", "/metrics"]);

/**
 * Pages a browser loads (a browser cannot put a header on a page load or an EventSource): their
 * GETs also take the session cookie, and the page itself answers 401 with a log-in form.
 */
export interface BrowserArea {
  /** Path prefix, e.g. `/dashboard`; the page is this path itself. */
  prefix: string;
  /** Its log-in and log-out routes: open (they only set or clear the session cookie). */
  openPaths: ReadonlySet<string>;
  /** The log-in page. */
  loginPage(rt: Runtime): string | Promise<string>;
}

/** What `createHttpApp` needs besides the runtime. */
export interface HttpAppOptions {
  /** Serve the API (role `http`); otherwise only probes and metrics. */
  api: boolean;
  /** The services running in this process, for `/readyz`. */
  services: () => readonly Service[];
  /** Longest wait for a request body; default `BODY_TIMEOUT_MS` (30 s). */
  bodyTimeoutMs?: number;
  /** The route modules of the API, in order. */
  routes: readonly AppRoutes[];
  /** Browser pages that take the session cookie. */
  browser?: BrowserArea;
}

const _httpMetrics = perRuntime((rt) => {
  const requests = new CheapCounter(
    "http_requests_total",
    "HTTP requests answered, by method, route and status",
    ["method", "route", "status"],
    promRegistry(rt),
  );
  const duration = new CheapHistogram(
    "http_request_duration_seconds",
    "Time to answer HTTP requests, by method and route",
    ["method", "route"],
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    promRegistry(rt),
  );
  // Both label sets are closed (see requestLabels), so this map stays small.
  const children = new Map<string, { count: CounterChild; time: HistogramChild }>();
  return {
    observe(method: string, route: string, status: number, seconds: number) {
      const id = `${method} ${status} ${route}`;
      let child = children.get(id);
      if (!child) {
        child = {
          count: requests.child(method, route, String(status)),
          time: duration.child(method, route),
        };
        children.set(id, child);
      }
      child.count.inc();
      child.time.observe(seconds);
    },
  };
});

/** This process's request ids: random per process, then a counter (unique without a UUID each). */
const _ID_PREFIX = Array.from(
  crypto.getRandomValues(new Uint8Array(6)),
  (b) => b.toString(16).padStart(2, "0"),
).join("");
let _idCounter = 0;

/**
 * A request id for a request that brought none: `<12 random hex digits>-<counter in base 36>`.
 *
 * @returns the id
 */
export function nextRequestId(): string {
  return `${_ID_PREFIX}-${(++_idCounter).toString(36)}`;
}

/** The methods `http_requests_total` names; any other is counted as `other`. */
const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]);

/**
 * The metric labels of a request, each from a closed set whatever the client sends: a standard
 * method or `other`, a route template or `unmatched`.
 *
 * @param c the Hono context, after the handler ran
 * @param route the route's template when the caller knows it (else read from the request)
 * @returns the method and route labels
 */
export function requestLabels(c: Context, route?: string): { method: string; route: string } {
  const method = METHODS.has(c.req.method) ? c.req.method : "other";
  const path = route ?? c.req.routePath;
  return { method, route: path === "/*" || path === "*" ? "unmatched" : path };
}

/**
 * The body length a request declares: its `Content-Length` when it has no `Transfer-Encoding`
 * (which would override it), else undefined (the body's own length is then counted as it is read).
 */
function declaredLength(c: Context): number | undefined {
  const headers = c.req.raw.headers;
  const length = headers.get("content-length");
  if (length === null || headers.has("transfer-encoding") || !/^\d{1,15}$/.test(length)) {
    return undefined;
  }
  return Number(length);
}

/**
 * Builds the app around the given route modules.
 *
 * @param rt the runtime
 * @param options API or probes only, the running services, the routes
 * @returns the Hono app, ready for `Deno.serve` or `app.request()`
 * @example
 * ```ts
 * const app = createHttpApp(rt, { api: true, services: () => [], routes: [myRoutes] });
 * const res = await app.request("/healthz");
 * ```
 */
export function createHttpApp(rt: Runtime, options: HttpAppOptions): Hono<AppEnv> {
  const metrics = _httpMetrics(rt);
  const log = rt.log.child({ component: "http" });
  const access = recordWriter(log, "info", "request");

  const maxSize = rt.config.bodyLimitBytes;
  const limitError = (c: Context<AppEnv>) =>
    problem(c, 413, `The request body exceeds ${maxSize} bytes`);
  const limit = bodyLimit({ maxSize, onError: limitError });
  const keys = rt.config.apiKeys;
  const browser = options.browser;
  const bodyTimeoutMs = options.bodyTimeoutMs;

  /** The API key check: undefined when the request may go on, else the 401 answer. */
  const refuseUnauthorized = async (c: Context<AppEnv>): Promise<Response | undefined> => {
    if (OPEN_PATHS.has(c.req.path) || browser?.openPaths.has(c.req.path)) return undefined;
    const token = bearer(c);
    if (token !== undefined && isKey(token, keys)) return undefined;
    // A browser cannot put a header on a page load or an EventSource, so a browser area's
    // pages take its session cookie; anything else takes it only with the session header,
    // which another site's page cannot send (CSRF).
    const page = browser !== undefined && c.req.method === "GET" &&
      c.req.path.startsWith(browser.prefix);
    const session = page || c.req.header(SESSION_HEADER) !== undefined
      ? cookie(c, SESSION_COOKIE)
      : undefined;
    if (session !== undefined && await isSession(session, keys)) return undefined;
    if (page && c.req.path === browser.prefix) return c.html(await browser.loginPage(rt), 401);
    c.header("www-authenticate", 'Bearer realm="svc"');
    return problem(
      c,
      401,
      token !== undefined
        ? "The API key is not valid"
        : "An API key is required: Authorization: Bearer <key>",
    );
  };

  /**
   * The request checks, then the route: a refusal is the answer. Not an async function: without
   * API keys nothing here awaits, so it adds no async step of its own.
   */
  const admit = (c: Context<AppEnv>, next: () => Promise<void>): Promise<void> => {
    const refused = refuseRequest(c);
    if (refused) {
      c.res = refused;
      return Promise.resolve();
    }
    if (keys.length === 0) return next();
    return refuseUnauthorized(c).then((unauthorized) => {
      if (!unauthorized) return next();
      c.res = unauthorized;
    });
  };

  // One middleware rather than one per concern (each would be an async step of every request),
  // run by the router around each route's own handlers.
  const around: Around = async (c, next, template) => {
    const started = performance.now();
    const incoming = c.req.header("x-request-id");
    const propagated = incoming !== undefined && /^[\w.\-:]{1,128}$/.test(incoming);
    const requestId = propagated ? incoming : nextRequestId();
    c.set("requestId", requestId);
    c.set("rt", rt);
    if (bodyTimeoutMs !== undefined) c.set("bodyTimeoutMs", bodyTimeoutMs);
    // A caller's (or ingress's) request id is echoed; one made here is logged and put in error
    // bodies but not sent on successes: any header beyond content-type takes Deno.serve off its
    // fast path, which cost a fifth of the throughput of a cheap route. Set before the handler,
    // since a header added after `next()` makes Hono rebuild the response.
    if (propagated) c.header("x-request-id", requestId);
    // GET and HEAD carry no body we read; asking for one would build a stream per request.
    if (c.req.method === "GET" || c.req.method === "HEAD") await admit(c, next);
    else {
      // A declared length is checked here: Hono's bodyLimit reads `req.body` first, which builds
      // a stream and takes the body read off Deno's direct path (about 8 µs a request). A body
      // of undeclared length is counted by bodyLimit as it arrives.
      const length = declaredLength(c);
      if (length !== undefined) {
        if (length > maxSize) c.res = limitError(c);
        else await admit(c, next);
      } else {
        const tooLarge = await limit(c, () => admit(c, next));
        if (tooLarge instanceof Response && !c.finalized) c.res = tooLarge;
      }
    }
    const { method, route } = requestLabels(c, template);
    const seconds = (performance.now() - started) / 1000;
    metrics.observe(method, route, c.res.status, seconds);
    const path = c.req.path;
    if (!OPEN_PATHS.has(path)) {
      // The request id matched the pattern above or is ours: nothing in it needs escaping.
      access(
        `"request_id":"${requestId}","method":${
          method === "other" ? logString(c.req.method.slice(0, 32)) : `"${method}"`
        },"path":${logString(path)},"status":${c.res.status},"duration_ms":${
          Math.round(seconds * 1e4) / 10
        }`,
      );
    }
  };
  const onError: ErrorHandler<AppEnv> = (err, c) => {
    if (err instanceof HttpProblem) {
      for (const [name, value] of Object.entries(err.headers)) c.header(name, value);
      return problem(c, err.status, err.detail, err.extra);
    }
    if (err instanceof UnavailableError) {
      c.header("retry-after", "1");
      return problem(c, 503, err.message, { dependency: err.dependency });
    }
    if (err instanceof HTTPException) {
      const status = err.status >= 400 && err.status < 500 ? err.status : 400;
      return problem(c, status as 400, err.message || "The request is invalid");
    }
    if (err instanceof SyntaxError || err instanceof TypeError && /body|json/i.test(err.message)) {
      return problem(c, 400, `The request body is not valid JSON: ${err.message}`);
    }
    log.error("unhandled error", { request_id: c.get("requestId"), error: err, stack: err.stack });
    return problem(c, 500, "An unexpected error occurred; it has been logged");
  };
  const app = new Hono<AppEnv>({ router: new RouteChains(around, onError as ErrorHandler) });

  probeRoutes(app, rt, options.services);

  if (options.api) {
    // hono-openapi finds the valibot converter by a dynamic import of an optional peer, which
    // an app's own import map does not name; handing it over makes the runtime self-contained.
    loadVendor("valibot", toJsonSchema as Parameters<typeof loadVendor>[1]);
    for (const routes of options.routes) routes(app, rt);
    app.get(
      "/openapi.json",
      openAPIRouteHandler(app, {
        documentation: {
          openapi: "3.1.0",
          info: {
            title: rt.config.serviceName,
            version: "1.0.0",
            description: "Microservice runtime API",
          },
          components: {
            securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
          },
          security: keys.length > 0 ? [{ bearer: [] }] : [],
        },
      }),
    );
  }

  const notFound = (c: Context<AppEnv>) =>
    problem(c, 404, `No route for ${c.req.method} ${c.req.path}`);
  app.notFound(async (c) => {
    // A request no route matched has not been through `around` yet (one whose route called
    // `next()` has).
    if (c.get("requestId") !== undefined) return notFound(c);
    await around(c, () => {
      c.res = notFound(c);
      return Promise.resolve();
    }, "unmatched");
    return c.res;
  });
  app.onError(onError);
  return app;
}
