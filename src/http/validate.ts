/**
 * @module Request validation with valibot schemas that also document the route in OpenAPI.
 */
import type { Context, MiddlewareHandler, Next } from "hono";
import {
  describeRoute as _describeRoute,
  type DescribeRouteOptions,
  resolver,
  validator,
} from "hono-openapi";
import * as v from "valibot";
import { type Issue, problem } from "./problem.ts";
import { jsonWithin, unlessJson } from "./guard.ts";

/** The part of a request {@link validate} checks. */
export type Target = "json" | "query" | "param" | "header";

/** The middleware {@link validate} returns: `c.req.valid(target)` is the schema's output. */
export type Validated<T extends Target, S extends v.GenericSchema | v.GenericSchemaAsync> =
  MiddlewareHandler<
    // deno-lint-ignore no-explicit-any
    any,
    string,
    { in: { [K in T]: v.InferInput<S> }; out: { [K in T]: v.InferOutput<S> } }
  >;

/** An OpenAPI response entry of a route's description ({@link describeRoute}). */
export type OpenApiResponse = NonNullable<DescribeRouteOptions["responses"]>[string];

/** An OpenAPI `content` map (bodies by media type) of an {@link OpenApiResponse}. */
export type OpenApiContent = NonNullable<Exclude<OpenApiResponse, { $ref: string }>["content"]>;

/**
 * Documents a route in `/openapi.json` (hono-openapi's `describeRoute`): put it before the
 * handler, with the route's summary and responses.
 *
 * @param spec the route's summary, tags, responses…
 * @returns the middleware that carries it
 *
 * @example
 * ```ts ignore
 * app.get("/ping", describeRoute({ summary: "Ping", responses: { 200: { description: "Pong" } } }),
 *   (c) => c.json({ pong: true }));
 * ```
 */
export function describeRoute(spec: DescribeRouteOptions): MiddlewareHandler {
  return _describeRoute(spec);
}

/** Turns valibot/standard-schema issues into `{path, message}`. */
export function toIssues(
  issues: readonly { message: string; path?: readonly unknown[] }[],
): Issue[] {
  return issues.map((issue) => ({
    path: (issue.path ?? [])
      .map((
        p,
      ) => (typeof p === "object" && p !== null && "key" in p
        ? String((p as { key: unknown }).key)
        : String(p))
      )
      .join("."),
    message: issue.message,
  }));
}

const OBJECT_TYPES = new Set(["object", "strict_object", "loose_object", "object_with_rest"]);

/**
 * Whether a schema takes only objects at its top (valibot's object schemas also take arrays:
 * `[]` would pass as `{}`).
 *
 * @param schema a valibot schema, possibly a pipe
 * @returns true for object schemas
 */
export function expectsObject(schema: v.GenericSchema | v.GenericSchemaAsync): boolean {
  const s = schema as { type: string; pipe?: readonly { type: string; kind: string }[] };
  return OBJECT_TYPES.has(s.type) || s.type === "record" ||
    (s.pipe !== undefined && s.pipe[0] !== undefined && expectsObject(s.pipe[0] as never));
}

/**
 * The issue of an array given where an object schema is expected.
 *
 * @param schema the schema
 * @param value the input
 * @returns the issue, or undefined
 */
export function arrayForObject(
  schema: v.GenericSchema | v.GenericSchemaAsync,
  value: unknown,
): Issue | undefined {
  return Array.isArray(value) && expectsObject(schema)
    ? { path: "", message: "must be an object, not an array" }
    : undefined;
}

/** Reads the part of the request a schema checks (`json` is read by the middleware itself). */
function _reader(
  target: Exclude<Target, "json">,
  schema: v.GenericSchema | v.GenericSchemaAsync,
): (c: Context) => unknown {
  if (target === "param") return (c) => c.req.param();
  if (target === "query") {
    return (c) => {
      const out: Record<string, string | string[]> = {};
      for (const [k, values] of Object.entries(c.req.queries())) {
        out[k] = values.length === 1 ? values[0] : values;
      }
      return out;
    };
  }
  // An object schema reads only the headers it names: all of them would be a copy of every
  // header per request, and an object schema drops the others anyway.
  const entries = (schema as { entries?: Record<string, unknown> }).entries;
  if (!entries || !OBJECT_TYPES.has(schema.type)) return (c) => c.req.header();
  const names = Object.keys(entries);
  return (c) => {
    const out: Record<string, string> = {};
    for (const name of names) {
      const value = c.req.header(name);
      if (value !== undefined) out[name] = value;
    }
    return out;
  };
}

/**
 * Validates one part of the request; failure → 400 problem+json with `issues`. The schema
 * also appears in `/openapi.json`. A `json` body must be declared `application/json` (415
 * otherwise), arrive within the body timeout (408 otherwise), and an object schema takes no
 * array.
 *
 * @param target `json`, `query`, `param` or `header`
 * @param schema the valibot schema
 * @returns Hono middleware; read the value with `c.req.valid(target)`
 * @example
 * ```ts
 * app.post("/orders", validate("json", OrderInput), (c) => c.json(c.req.valid("json")));
 * ```
 */
export function validate<T extends Target, S extends v.GenericSchema | v.GenericSchemaAsync>(
  target: T,
  schema: S,
): Validated<T, S> {
  const where = target === "json" ? "body" : target;
  type Result = { success: boolean; output: unknown; issues?: readonly v.BaseIssue<unknown>[] };
  const accept = (c: Context, next: Next, result: Result): Response | Promise<void> => {
    if (!result.success) {
      return problem(c, 400, `The request ${where} is invalid`, {
        issues: toIssues(result.issues ?? []),
      });
    }
    c.req.addValidatedData(target, result.output as object);
    return next();
  };
  // valibot directly, synchronously for a synchronous schema: hono-openapi's validator goes
  // through Standard Schema and two more awaits per request.
  const checkAsync = async (c: Context, next: Next, value: unknown) =>
    await accept(c, next, await v.safeParseAsync(schema, value) as Result);
  const check = (c: Context, next: Next, value: unknown): Response | Promise<Response | void> =>
    schema.async
      ? checkAsync(c, next, value)
      : accept(c, next, v.safeParse(schema as v.GenericSchema, value) as Result);
  let middleware: (c: Context, next: Next) => Response | Promise<Response | void>;
  if (target === "json") {
    middleware = async (c, next) => {
      const refused = unlessJson(c);
      if (refused) return refused;
      const body = await jsonWithin(c);
      if (body instanceof Response) {
        c.header("connection", "close");
        return body;
      }
      const array = arrayForObject(schema, body);
      if (array) return problem(c, 400, "The request body is invalid", { issues: [array] });
      return await check(c, next, body);
    };
  } else {
    const read = _reader(target as Exclude<Target, "json">, schema);
    middleware = (c, next) => check(c, next, read(c));
  }
  // hono-openapi finds the schema for the document on the middleware itself.
  const documented = validator(target, schema as never) as unknown as Record<symbol, unknown>;
  Object.defineProperty(middleware, "name", { value: "validator", configurable: true });
  for (const symbol of Object.getOwnPropertySymbols(documented)) {
    (middleware as unknown as Record<symbol, unknown>)[symbol] = documented[symbol];
  }
  return middleware as unknown as Validated<T, S>;
}

/**
 * An OpenAPI `content` entry for a JSON response described by a valibot schema.
 *
 * @param schema the response's schema
 * @returns `{ "application/json": { schema } }` for `describeRoute`
 * @example
 * ```ts
 * describeRoute({ responses: { 200: { description: "The order", content: jsonContent(Order) } } });
 * ```
 */
export function jsonContent(schema: v.GenericSchema): OpenApiContent {
  return { "application/json": { schema: resolver(schema) } };
}

/**
 * An OpenAPI response entry for a problem+json error.
 *
 * @param description when it happens
 * @returns the response entry for `describeRoute`
 */
export function problemResponse(description: string): OpenApiResponse {
  return { description, content: { "application/problem+json": {} } };
}
