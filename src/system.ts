/**
 * @module What a program is made of: its definitions (tasks, consumers, schedules, parallel
 * tasks) and its HTTP routes, gathered before any role starts.
 */
import type { Hono } from "hono";
import type { AppEnv } from "./http/env.ts";
import type { Runtime } from "./runtime.ts";

/** Anything defined with a `define*` function: a task type, a consumer, a schedule… */
export interface Definition {
  /** What it is: `task`, `consumer`, `bulk-consumer`, `schedule`, `parallel-task`. */
  readonly kind: string;
  /** Unique within its kind. */
  readonly name: string;
}

/** Adds a user's routes to the HTTP app. */
export type RouteModule = (app: Hono<AppEnv>, rt: Runtime) => void;

/**
 * The set of definitions and routes one program runs.
 *
 * @example
 * ```ts
 * const system = new System().add(sleepTask, ordersConsumer).routes(ordersRoutes);
 * ```
 */
export class System {
  #defs = new Map<string, Definition[]>();
  #routes: RouteModule[] = [];

  /**
   * Adds definitions.
   *
   * @param defs definitions made with the `define*` functions
   * @returns this system
   * @throws {Error} when a kind already has that name
   */
  add(...defs: Definition[]): this {
    for (const def of defs) {
      const list = this.#defs.get(def.kind) ?? [];
      if (list.some((d) => d.name === def.name)) {
        throw new Error(`A ${def.kind} named "${def.name}" is already defined`);
      }
      list.push(def);
      this.#defs.set(def.kind, list);
    }
    return this;
  }

  /**
   * Adds HTTP routes, served by the `http` role.
   *
   * @param modules functions that add routes to the app
   * @returns this system
   */
  routes(...modules: RouteModule[]): this {
    this.#routes.push(...modules);
    return this;
  }

  /**
   * Lists the definitions of one kind.
   *
   * @param kind e.g. `task`
   * @returns the definitions, in the order they were added
   */
  all<T extends Definition>(kind: T["kind"]): T[] {
    return [...(this.#defs.get(kind) ?? [])] as T[];
  }

  /**
   * Finds one definition.
   *
   * @param kind e.g. `task`
   * @param name its name
   * @returns the definition or undefined
   */
  get<T extends Definition>(kind: T["kind"], name: string): T | undefined {
    return this.#defs.get(kind)?.find((d) => d.name === name) as T | undefined;
  }

  /** The route modules, in the order they were added. */
  get routeModules(): readonly RouteModule[] {
    return this.#routes;
  }
}
