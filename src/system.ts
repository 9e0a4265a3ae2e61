/**
 * @module What a program is made of: its definitions (tasks, consumers, schedules, parallel
 * tasks) and its HTTP routes, gathered before any role starts.
 */
import type { RouteModule } from "./http/routes.ts";
import type { Definition, DefinitionKind, Definitions } from "./definitions.ts";

export type { Definition, DefinitionKind, Definitions } from "./definitions.ts";
export type { RouteModule } from "./http/routes.ts";

/**
 * The set of definitions and routes one program runs.
 *
 * @example
 * ```ts
 * const system = new System().add(sleepTask, ordersConsumer).routes(ordersRoutes);
 * ```
 */
export class System implements Definitions {
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
   * @param kind the kind's key, e.g. `TASKS`
   * @returns the definitions, in the order they were added
   */
  all<T extends Definition>(kind: DefinitionKind<T>): readonly T[] {
    // The one cast: `add` files each definition under its own `kind`, which the key names.
    return (this.#defs.get(kind.name) ?? []) as T[];
  }

  /**
   * Finds one definition.
   *
   * @param kind the kind's key, e.g. `TASKS`
   * @param name its name
   * @returns the definition or undefined
   */
  get<T extends Definition>(kind: DefinitionKind<T>, name: string): T | undefined {
    return this.all(kind).find((d) => d.name === name);
  }

  /** The route modules, in the order they were added. */
  get routeModules(): readonly RouteModule[] {
    return this.#routes;
  }
}
