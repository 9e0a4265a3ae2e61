/**
 * @module The HTTP kit's app: middleware, auth, probes, metrics, OpenAPI and problem+json
 * errors around the route modules it is given. It knows no feature: `src/app.ts` composes them.
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { bodyLimit } from "hono/body-limit";
import { openAPIRouteHandler } from "hono-openapi";
import { Counter, Histogram } from "prom-client";
import type { AppEnv, RouteModule } from "./env.ts";
import { HttpProblem, problem } from "./problem.ts";
import { probeRoutes } from "./probes.ts";
import { UnavailableError } from "../infra/store.ts";
import { perRuntime, type Runtime, type Service } from "../runtime.ts";

/** Largest request body accepted, in bytes (API.md: 1 MiB). */
export const BODY_LIMIT_BYTES = 1024 * 1024;

/** Paths answered without `Authorization`, so probes and scrapers need no key. */
const OPEN_PATHS = new Set(["/healthz", "/readyz", "/metrics"]);

/**
 * Pages a browser loads (a browser cannot put a header on a page load or an EventSource): their
 * GETs also take the API key from a cookie, and the page itself answers 401 with a login form.
 */
export interface BrowserArea {
  /** Path prefix, e.g. `/dashboard`; the page is this path itself. */
  prefix: string;
  /** The cookie holding the API key. */
  cookie: string;
  /** The login page. */
  loginPage(): string | Promise<string>;
}

/** What `createHttpApp` needs besides the runtime. */
export interface HttpAppOptions {
  /** Serve the API (role `http`); otherwise only probes and metrics. */
  api: boolean;
  /** The services running in this process, for `/readyz`. */
  services: () => readonly Service[];
  /** The route modules of the API, in order. */
  routes: readonly RouteModule[];
  /** Browser pages that accept the key from a cookie. */
  browser?: BrowserArea;
}

const _httpMetrics = perRuntime((rt) => {
  const requests = new Counter({
    name: "http_requests_total",
    help: "HTTP requests answered, by method, route and status",
    labelNames: ["method", "route", "status"],
    registers: [rt.metrics],
  });
  const duration = new Histogram({
    name: "http_request_duration_seconds",
    help: "Time to answer HTTP requests, by method and route",
    labelNames: ["method", "route"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [rt.metrics],
  });
  // Label children cached per (method, route, status): prom-client hashes labels on every
  // call otherwise, a measurable part of a fast request.
  const children = new Map<
    string,
    { count: { inc(): void }; time: { observe(v: number): void } }
  >();
  return {
    observe(method: string, route: string, status: number, seconds: number) {
      const id = `${method} ${status} ${route}`;
      let child = children.get(id);
      if (!child) {
        child = {
          count: requests.labels(method, route, String(status)),
          time: duration.labels(method, route),
        };
        children.set(id, child);
      }
      child.count.inc();
      child.time.observe(seconds);
    },
  };
});

function _cookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const [k, ...rest] = part.trim().split("=");
    if (k !== name) continue;
    try {
      return decodeURIComponent(rest.join("="));
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function _sameKey(given: string, keys: readonly string[]): boolean {
  const a = new TextEncoder().encode(given);
  let found = false;
  for (const key of keys) {
    const b = new TextEncoder().encode(key);
    let diff = a.length ^ b.length;
    for (let i = 0; i < a.length; i++) diff |= a[i] ^ (b[i % (b.length || 1)] ?? 0);
    found ||= diff === 0;
  }
  return found;
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
  const app = new Hono<AppEnv>();
  const metrics = _httpMetrics(rt);
  const log = rt.log.child({ component: "http" });

  app.use(async (c, next) => {
    const started = performance.now();
    const incoming = c.req.header("x-request-id");
    const propagated = incoming !== undefined && /^[\w.\-:]{1,128}$/.test(incoming);
    const requestId = propagated ? incoming : crypto.randomUUID();
    c.set("requestId", requestId);
    c.set("rt", rt);
    // A caller's (or ingress's) request id is echoed; one made here is logged and put in error
    // bodies but not sent on successes: any header beyond content-type takes Deno.serve off its
    // fast path, which cost a fifth of the throughput of a cheap route. Set before the handler,
    // since a header added after `next()` makes Hono rebuild the response.
    if (propagated) c.header("x-request-id", requestId);
    await next();
    const route = c.req.routePath === "/*" ? "unmatched" : c.req.routePath;
    const seconds = (performance.now() - started) / 1000;
    metrics.observe(c.req.method, route, c.res.status, seconds);
    if (!OPEN_PATHS.has(c.req.path)) {
      log.info("request", {
        request_id: requestId,
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        duration_ms: Math.round(seconds * 1e4) / 10,
      });
    }
  });

  const limit = bodyLimit({
    maxSize: BODY_LIMIT_BYTES,
    onError: (c) => problem(c, 413, `The request body exceeds ${BODY_LIMIT_BYTES} bytes`),
  });
  // GET and HEAD carry no body we read; asking for one would build a stream per request.
  app.use((
    c,
    next,
  ) => (c.req.method === "GET" || c.req.method === "HEAD" ? next() : limit(c, next)));

  const keys = rt.config.apiKeys;
  const browser = options.browser;
  if (keys.length > 0) {
    app.use(async (c, next) => {
      if (OPEN_PATHS.has(c.req.path)) return next();
      const match = /^Bearer\s+(.+)$/i.exec(c.req.header("authorization") ?? "");
      // Only GETs take the cookie: a browser area's actions still send the header (no CSRF).
      const area = browser && c.req.method === "GET" && c.req.path.startsWith(browser.prefix)
        ? browser
        : undefined;
      const cookie = area ? _cookie(c.req.header("cookie"), area.cookie) : undefined;
      if (cookie !== undefined && _sameKey(cookie, keys)) return next();
      if (!match || !_sameKey(match[1].trim(), keys)) {
        if (area && c.req.path === area.prefix) return c.html(await area.loginPage(), 401);
        c.header("www-authenticate", 'Bearer realm="svc"');
        return problem(
          c,
          401,
          match
            ? "The API key is not valid"
            : "An API key is required: Authorization: Bearer <key>",
        );
      }
      await next();
    });
  }

  probeRoutes(app, rt, options.services);

  if (options.api) {
    for (const routes of options.routes) routes(app, rt);
    app.get(
      "/openapi.json",
      openAPIRouteHandler(app, {
        documentation: {
          openapi: "3.1.0",
          info: { title: "svc", version: "1.0.0", description: "Microservice runtime API" },
          components: {
            securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
          },
          security: keys.length > 0 ? [{ bearer: [] }] : [],
        },
      }),
    );
  }

  app.notFound((c) => problem(c, 404, `No route for ${c.req.method} ${c.req.path}`));
  app.onError((err, c) => {
    if (err instanceof HttpProblem) return problem(c, err.status, err.detail, err.extra);
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
  });
  return app;
}
