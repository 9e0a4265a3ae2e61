/**
 * @module The app's router: each route's handlers run as one step inside the app's own
 * middleware, so a request to a route costs one router lookup and no per-request composition.
 */
import type { Context, ErrorHandler, Next } from "hono";
import type { Result, Router } from "hono/router";
import type { H, RouterRoute } from "hono/types";
import { TrieRouter } from "hono/router/trie-router";
import { RegExpRouter } from "hono/router/reg-exp-router";
import { SmartRouter } from "hono/router/smart-router";
import { uniqueSymbol } from "hono-openapi";

/** What Hono hands a router for each handler: the handler and the route it belongs to. */
type Entry = [H, RouterRoute];

/**
 * The app's middleware around a route: `route` is the route's template, or undefined when it
 * must be read from the request (`c.req.routePath`).
 */
export type Around = (c: Context, next: Next, route?: string) => Promise<void>;

/**
 * Whether a handler is a `describeRoute` middleware: it only carries a route's OpenAPI
 * description (read from `app.routes` when `/openapi.json` is built) and is left out of the
 * router.
 */
function _describeOnly(handler: unknown): boolean {
  if (typeof handler !== "function") return false;
  const meta = (handler as unknown as Record<symbol, { spec?: unknown; target?: unknown }>)[
    uniqueSymbol
  ];
  return meta?.spec !== undefined && meta.target === undefined;
}

/** Whether a route's path has no parameter, wildcard or pattern. */
function _isStatic(path: string): boolean {
  return !/[:*?{]/.test(path);
}

/** A settled step. */
const _DONE: Promise<void> = Promise.resolve();

/** Takes a step's answer, as Hono's `compose` does. */
function _answer(c: Context, res: unknown, failed: boolean): void {
  if (res instanceof Response && (!c.finalized || failed)) c.res = res;
}

/** Answers a step's error through the error handler (anything not an Error goes on up). */
async function _failed(c: Context, err: unknown, onError: ErrorHandler): Promise<void> {
  if (!(err instanceof Error)) throw err;
  _answer(c, await onError(err, c), true);
}

/**
 * Runs a route's handlers in turn as Hono's `compose` does: an error answers through the error
 * handler at the step that threw, and the last handler's `next` is the router's. Not an async
 * function: a step whose handler answers at once costs no promise of its own, and one that awaits
 * costs one `then`.
 */
function _step(
  c: Context,
  handlers: readonly Entry[0][],
  i: number,
  next: Next,
  onError: ErrorHandler,
): Promise<void> {
  const handler = handlers[i];
  if (handler === undefined) return next();
  let res: unknown;
  try {
    res = handler(c, () => _step(c, handlers, i + 1, next, onError));
  } catch (err) {
    return _failed(c, err, onError);
  }
  if (typeof (res as PromiseLike<unknown> | undefined)?.then === "function") {
    return Promise.resolve(res).then(
      (value) => _answer(c, value, false),
      (err) => _failed(c, err, onError),
    );
  }
  _answer(c, res, false);
  return _DONE;
}

/**
 * Hono's router interface over Hono's `SmartRouter` holding one handler per route (the route's own
 * handlers inside `around`), with static paths answered from a map built once. A route module
 * that registers middleware for many routes (`app.use`, `app.all`, a `*` path) gets Hono's own
 * order of handlers instead: `around` first, then every matching handler.
 */
export class RouteChains implements Router<Entry> {
  /** The router's name, as Hono's routers have one. */
  readonly name = "RouteChains";
  #around: Around;
  #onError: ErrorHandler;
  #added: { method: string; path: string; entry: Entry }[] = [];
  #built: { statics: Map<string, Map<string, Result<Entry>>>; inner: Router<Entry> } | undefined;

  /**
   * @param around the app's middleware, run once per request around the route
   * @param onError the app's error handler
   */
  constructor(around: Around, onError: ErrorHandler) {
    this.#around = around;
    this.#onError = onError;
  }

  /**
   * Adds one handler of a route (Hono calls this once per handler, in order).
   *
   * @param method the method, or `ALL`
   * @param path the path template
   * @param entry the handler and its route
   */
  add(method: string, path: string, entry: Entry): void {
    if (_describeOnly(entry[0])) return;
    this.#added.push({ method, path, entry });
    this.#built = undefined;
  }

  /**
   * The handlers of a request.
   *
   * @param method the method
   * @param path the path
   * @returns Hono's match result
   */
  match(method: string, path: string): Result<Entry> {
    const built = this.#built ??= this.#build();
    return built.statics.get(method)?.get(path) ?? built.inner.match(method, path);
  }

  #build(): { statics: Map<string, Map<string, Result<Entry>>>; inner: Router<Entry> } {
    // Hono's default pair: one regular expression per method when the paths allow it (a path
    // with a parameter costs one match, not a walk of its segments), else the trie.
    const inner: Router<Entry> = new SmartRouter<Entry>({
      routers: [new RegExpRouter(), new TrieRouter()],
    });
    const statics = new Map<string, Map<string, Result<Entry>>>();
    const around = this.#around;
    if (this.#added.some(({ method, path }) => method === "ALL" || path.includes("*"))) {
      const first: Entry[0] = (c, next) => around(c, next);
      inner.add("ALL", "/*", [first, { basePath: "/", path: "/*", method: "ALL", handler: first }]);
      for (const { method, path, entry } of this.#added) inner.add(method, path, entry);
      return { statics, inner };
    }
    const onError = this.#onError;
    const routes: { method: string; path: string; route: Entry[1]; handlers: Entry[0][] }[] = [];
    for (const { method, path, entry } of this.#added) {
      const last = routes.at(-1);
      if (last?.method === method && last.path === path) last.handlers.push(entry[0]);
      else routes.push({ method, path, route: entry[1], handlers: [entry[0]] });
    }
    // Static paths are answered from the map, with every route that matches them (from a trie
    // of all routes); the inner router holds only the paths with parameters, which also keeps
    // out of it what RegExpRouter cannot take (`/tasks/sleep` beside `/tasks/:type`).
    const all = new TrieRouter<Entry>();
    for (const { method, path, route, handlers } of routes) {
      const chain: Entry[0] = (c, next) =>
        around(c, () => _step(c, handlers, 0, next, onError), route.path);
      all.add(method, path, [chain, route]);
      if (!_isStatic(path)) inner.add(method, path, [chain, route]);
    }
    for (const { method, path } of routes) {
      if (!_isStatic(path)) continue;
      let byPath = statics.get(method);
      if (!byPath) statics.set(method, byPath = new Map());
      byPath.set(path, all.match(method, path));
    }
    return { statics, inner };
  }
}
