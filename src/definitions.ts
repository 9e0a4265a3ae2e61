/**
 * @module What features read of a program: its definitions, by kind, typed by the kind.
 */

/** Anything defined with a `define*` function: a task type, a consumer, a schedule… */
export interface Definition {
  /** What it is: `task`, `consumer`, `bulk-consumer`, `schedule`, `parallel-task`. */
  readonly kind: string;
  /** Unique within its kind. */
  readonly name: string;
}

/** A kind of definition, carrying the type of what it holds: the key to its definitions. */
export interface DefinitionKind<T extends Definition> {
  /** The `kind` of its definitions. */
  readonly name: T["kind"];
  /** Never set: ties the key to `T`. */
  readonly definition?: T;
}

/**
 * Makes the key of a kind of definition (one per `define*` function).
 *
 * @param name the `kind` its definitions carry
 * @returns the key, for `system.all(key)` and `system.get(key, name)`
 * @example
 * ```ts
 * export const TASKS = definitionKind<TaskDefinition>("task");
 * for (const def of rt.system.all(TASKS)) console.log(def.name, def.concurrency);
 * ```
 */
export function definitionKind<T extends Definition>(name: T["kind"]): DefinitionKind<T> {
  return { name };
}

/** The definitions of a program, as features read them. */
export interface Definitions {
  /**
   * Lists the definitions of one kind.
   *
   * @param kind the kind's key, e.g. `TASKS`
   * @returns the definitions, in the order they were added
   */
  all<T extends Definition>(kind: DefinitionKind<T>): readonly T[];
  /**
   * Finds one definition.
   *
   * @param kind the kind's key, e.g. `TASKS`
   * @param name its name
   * @returns the definition or undefined
   */
  get<T extends Definition>(kind: DefinitionKind<T>, name: string): T | undefined;
}
