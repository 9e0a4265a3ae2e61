/**
 * @module A program's routes, in the runtime's own types: the app a route module adds to, the
 * context a handler answers with, and the middleware that validates and documents a route.
 * The app is Hono's; these types name the part of it a program uses.
 */
import type { Context } from "hono";
import type { DescribeRouteOptions } from "hono-openapi";
import type { Runtime } from "../runtime.ts";
import { type AsyncSchema, type Schema, type SchemaOutput, valibotSchema } from "../schema.ts";
import { type ErrorStatus, problem as _problem } from "./problem.ts";
import {
  describeRoute as _describeRoute,
  jsonContent as _jsonContent,
  problemResponse as _problemResponse,
  type Target,
  validate as _validate,
} from "./validate.ts";

/** What validation middleware has checked, by {@link Target}: the schemas' outputs. */
export type ValidValues = { readonly [K in Target]?: unknown };

/** The variables every request carries. */
export interface RouteVariables {
  /** The request's id (`x-request-id`, made up when absent). */
  requestId: string;
  /** The runtime. */
  rt: Runtime;
}

/**
 * The request, as a handler reads it.
 *
 * @typeParam V what the route's {@link validate} middleware checked
 */
export interface RouteRequest<V extends ValidValues = ValidValues> {
  /** The Fetch API request. */
  readonly raw: Request;
  /** The path (`/orders/42`). */
  readonly path: string;
  /** The full URL. */
  readonly url: string;
  /** The method (`GET`). */
  readonly method: string;
  /**
   * A path parameter (`:id` of `/orders/:id`).
   *
   * @param name its name
   * @returns its value
   */
  param(name: string): string;
  /**
   * A query parameter (the first, when repeated).
   *
   * @param name its name
   * @returns its value, or undefined
   */
  query(name: string): string | undefined;
  /**
   * Every value of a query parameter.
   *
   * @param name its name
   * @returns its values, or undefined
   */
  queries(name: string): string[] | undefined;
  /**
   * A request header.
   *
   * @param name its name, any case
   * @returns its value, or undefined
   */
  header(name: string): string | undefined;
  /**
   * The body, parsed as JSON (unchecked: prefer {@link validate}).
   *
   * @returns the value
   */
  json(): Promise<unknown>;
  /**
   * The body as text.
   *
   * @returns the text
   */
  text(): Promise<string>;
  /**
   * What the route's {@link validate} middleware checked.
   *
   * @param target `json`, `query`, `param` or `header`
   * @returns the schema's output
   */
  valid<K extends keyof V & Target>(target: K): V[K];
}

/**
 * The context of one request: the request, the request's variables and the ways to answer.
 *
 * @typeParam V what the route's {@link validate} middleware checked
 */
export interface RouteContext<V extends ValidValues = ValidValues> {
  /** The request. */
  readonly req: RouteRequest<V>;
  /**
   * A request variable.
   *
   * @param key `requestId` or `rt`
   * @returns its value
   */
  get<K extends keyof RouteVariables>(key: K): RouteVariables[K];
  /**
   * Sets (or, with undefined, removes) a header of the answer.
   *
   * @param name the header's name
   * @param value its value
   */
  header(name: string, value: string | undefined): void;
  /**
   * Answers with JSON.
   *
   * @param value the body
   * @param status HTTP status; 200 by default
   * @param headers more headers
   * @returns the response
   */
  json(value: unknown, status?: number, headers?: Record<string, string>): Response;
  /**
   * Answers with text.
   *
   * @param text the body
   * @param status HTTP status; 200 by default
   * @param headers more headers
   * @returns the response
   */
  text(text: string, status?: number, headers?: Record<string, string>): Response;
  /**
   * Answers with any body.
   *
   * @param body the body, or null
   * @param status HTTP status; 200 by default
   * @param headers more headers
   * @returns the response
   */
  body(body: BodyInit | null, status?: number, headers?: Record<string, string>): Response;
  /**
   * Answers with a redirect.
   *
   * @param location where to
   * @param status 301, 302, 303, 307 or 308; 302 by default
   * @returns the response
   */
  redirect(location: string, status?: 301 | 302 | 303 | 307 | 308): Response;
}

/**
 * Middleware of a route; made by {@link validate} and {@link describeRoute}.
 *
 * @typeParam V what it validates, which the handler reads with `c.req.valid(target)`
 */
export interface Middleware<V extends ValidValues = ValidValues> {
  /**
   * Runs before the handler.
   *
   * @param c the request's context
   * @param next runs the rest of the route
   * @returns a response that ends the route early, or nothing
   */
  (c: RouteContext, next: () => Promise<void>): Promise<Response | void>;
  /** What it validates (types only: absent at run time). */
  readonly "~valid"?: V;
}

/**
 * A route's handler: answers the request.
 *
 * @typeParam V what the route's middleware validated
 */
export type Handler<V extends ValidValues = ValidValues> = (
  c: RouteContext<V>,
) => Response | Promise<Response>;

/**
 * Adds a route for one method: a path, middleware (validation, description) and the handler,
 * which reads what each middleware validated.
 */
export interface RouteMethod {
  /**
   * A route with no middleware.
   *
   * @param path the path, with `:name` parameters
   * @param handler the handler
   * @returns the app
   */
  (path: string, handler: Handler<Record<never, never>>): Routes;
  /**
   * A route with one middleware.
   *
   * @param path the path, with `:name` parameters
   * @param m1 middleware
   * @param handler the handler
   * @returns the app
   */
  <A extends ValidValues>(path: string, m1: Middleware<A>, handler: Handler<A>): Routes;
  /**
   * A route with two middlewares.
   *
   * @param path the path, with `:name` parameters
   * @param m1 middleware
   * @param m2 middleware
   * @param handler the handler
   * @returns the app
   */
  <A extends ValidValues, B extends ValidValues>(
    path: string,
    m1: Middleware<A>,
    m2: Middleware<B>,
    handler: Handler<A & B>,
  ): Routes;
  /**
   * A route with three middlewares.
   *
   * @param path the path, with `:name` parameters
   * @param m1 middleware
   * @param m2 middleware
   * @param m3 middleware
   * @param handler the handler
   * @returns the app
   */
  <A extends ValidValues, B extends ValidValues, C extends ValidValues>(
    path: string,
    m1: Middleware<A>,
    m2: Middleware<B>,
    m3: Middleware<C>,
    handler: Handler<A & B & C>,
  ): Routes;
  /**
   * A route with four middlewares.
   *
   * @param path the path, with `:name` parameters
   * @param m1 middleware
   * @param m2 middleware
   * @param m3 middleware
   * @param m4 middleware
   * @param handler the handler
   * @returns the app
   */
  <A extends ValidValues, B extends ValidValues, C extends ValidValues, D extends ValidValues>(
    path: string,
    m1: Middleware<A>,
    m2: Middleware<B>,
    m3: Middleware<C>,
    m4: Middleware<D>,
    handler: Handler<A & B & C & D>,
  ): Routes;
}

/** The HTTP app a {@link RouteModule} adds routes to (Hono's, served by the `http` role). */
export interface Routes {
  /** Adds a `GET` route. */
  readonly get: RouteMethod;
  /** Adds a `POST` route. */
  readonly post: RouteMethod;
  /** Adds a `PUT` route. */
  readonly put: RouteMethod;
  /** Adds a `PATCH` route. */
  readonly patch: RouteMethod;
  /** Adds a `DELETE` route. */
  readonly delete: RouteMethod;
}

/**
 * Adds a program's routes to the HTTP app (`System.routes`).
 *
 * @example
 * ```ts
 * import type { RouteModule } from "@svc/runtime";
 *
 * const ping: RouteModule = (app, rt) => {
 *   app.get("/ping", (c) => c.json({ pong: rt.config.serviceName }));
 * };
 * ```
 */
export type RouteModule = (app: Routes, rt: Runtime) => void;

/** An OpenAPI `content` map (bodies by media type) of an {@link OpenApiResponse}. */
export type OpenApiContent = Record<string, { schema?: object; example?: unknown }>;

/** An OpenAPI response entry of a route's description ({@link describeRoute}). */
export interface OpenApiResponse {
  /** When it happens. */
  description: string;
  /** Its bodies, by media type ({@link jsonContent}). */
  content?: OpenApiContent;
  /** Its headers, as OpenAPI header objects. */
  headers?: Record<string, object>;
}

/** A route's entry in `/openapi.json` (an OpenAPI operation object, in part). */
export interface RouteDescription {
  /** One line. */
  summary?: string;
  /** More, in Markdown. */
  description?: string;
  /** Groups of routes. */
  tags?: string[];
  /** A unique id of the operation. */
  operationId?: string;
  /** Marks it deprecated. */
  deprecated?: boolean;
  /** Leaves the route out of the document. */
  hide?: boolean;
  /** Its answers, by status (`200`, `404`…). */
  responses?: Record<string, OpenApiResponse>;
}

/**
 * Validates one part of the request; failure → 400 problem+json with `issues`. The schema
 * also appears in `/openapi.json`. A `json` body must be declared `application/json` (415
 * otherwise), arrive within the body timeout (408 otherwise), and an object schema takes no
 * array.
 *
 * @param target `json`, `query`, `param` or `header`
 * @param schema the valibot schema
 * @returns middleware; the handler reads the value with `c.req.valid(target)`
 * @example
 * ```ts
 * import * as v from "valibot";
 * import { type RouteModule, validate } from "@svc/runtime";
 *
 * const Order = v.object({ item: v.string(), qty: v.number() });
 * const orders: RouteModule = (app) => {
 *   app.post("/orders", validate("json", Order), (c) => c.json(c.req.valid("json"), 201));
 * };
 * ```
 */
export function validate<T extends Target, S extends Schema | AsyncSchema>(
  target: T,
  schema: S,
): Middleware<{ [K in T]: SchemaOutput<S> }> {
  return _validate(target, valibotSchema(schema)) as unknown as Middleware<
    { [K in T]: SchemaOutput<S> }
  >;
}

/**
 * Documents a route in `/openapi.json`: put it before the handler, with the route's summary
 * and responses.
 *
 * @param spec the route's summary, tags, responses…
 * @returns the middleware that carries it
 * @example
 * ```ts
 * import { describeRoute, type RouteModule } from "@svc/runtime";
 *
 * const ping: RouteModule = (app) => {
 *   app.get(
 *     "/ping",
 *     describeRoute({ summary: "Ping", responses: { 200: { description: "Pong" } } }),
 *     (c) => c.json({ pong: true }),
 *   );
 * };
 * ```
 */
export function describeRoute(spec: RouteDescription): Middleware<Record<never, never>> {
  return _describeRoute(spec as DescribeRouteOptions) as unknown as Middleware<
    Record<never, never>
  >;
}

/**
 * An OpenAPI `content` entry for a JSON response described by a valibot schema.
 *
 * @param schema the response's schema
 * @returns `{ "application/json": { schema } }` for {@link describeRoute}
 * @example
 * ```ts
 * import * as v from "valibot";
 * import { describeRoute, jsonContent } from "@svc/runtime";
 *
 * const Order = v.object({ id: v.string() });
 * describeRoute({ responses: { 200: { description: "The order", content: jsonContent(Order) } } });
 * ```
 */
export function jsonContent(schema: Schema): OpenApiContent {
  return _jsonContent(valibotSchema(schema)) as OpenApiContent;
}

/**
 * Answers with `application/problem+json` (RFC 9457); throwing an `HttpProblem` does the same.
 *
 * @param c the request's context
 * @param status HTTP status (4xx, 5xx)
 * @param detail human-readable explanation
 * @param extra more members (e.g. `issues`)
 * @returns the response
 * @example
 * ```ts
 * import { problem, type RouteModule } from "@svc/runtime";
 *
 * const teapot: RouteModule = (app) => {
 *   app.get("/coffee", (c) => problem(c, 418, "This is a teapot"));
 * };
 * ```
 */
export function problem(
  c: RouteContext,
  status: ErrorStatus,
  detail: string,
  extra: Record<string, unknown> = {},
): Response {
  // The one cast: every RouteContext the runtime hands out is Hono's Context.
  return _problem(c as unknown as Context, status, detail, extra);
}

/**
 * An OpenAPI response entry for a problem+json error.
 *
 * @param description when it happens
 * @returns the response entry for {@link describeRoute}
 */
export function problemResponse(description: string): OpenApiResponse {
  return _problemResponse(description) as OpenApiResponse;
}
