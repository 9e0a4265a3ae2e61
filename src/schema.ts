/**
 * @module The schemas the runtime takes (task inputs, consumer messages, requests): valibot's,
 * named by the runtime's own types so its API documents them.
 */
import * as v from "valibot";

/**
 * A valibot schema's Standard Schema member (`~standard`): what the runtime reads its types
 * from.
 *
 * @typeParam I what the schema takes
 * @typeParam O what it gives once valid
 */
export interface SchemaStandard<I, O> {
  /** The Standard Schema version. */
  readonly version: 1;
  /** The library: the runtime validates with valibot and documents its schemas in OpenAPI. */
  readonly vendor: "valibot";
  /** The input and output types (types only: absent at run time). */
  readonly types?: { readonly input: I; readonly output: O } | undefined;
}

/**
 * A synchronous valibot schema (`v.object(…)`, `v.pipe(…)`…): every valibot schema that is
 * not async is one.
 *
 * @typeParam I what the schema takes ({@link SchemaInput})
 * @typeParam O what it gives once valid ({@link SchemaOutput})
 * @example
 * ```ts
 * import * as v from "valibot";
 * import type { Schema, SchemaOutput } from "@svc/runtime";
 *
 * const Signup = v.object({ email: v.pipe(v.string(), v.email()) });
 * const schema: Schema = Signup;
 * const signup: SchemaOutput<typeof Signup> = { email: "a@example.com" };
 * ```
 */
export interface Schema<I = unknown, O = I> {
  /** valibot's kind of object. */
  readonly kind: "schema";
  /** The schema's type (`object`, `string`…). */
  readonly type: string;
  /** Synchronous. */
  readonly async: false;
  /** Its Standard Schema member. */
  readonly "~standard": SchemaStandard<I, O>;
}

/**
 * An async valibot schema (`v.objectAsync(…)`, `v.pipeAsync(…)`…), which {@link validate}
 * takes too.
 *
 * @typeParam I what the schema takes
 * @typeParam O what it gives once valid
 */
export interface AsyncSchema<I = unknown, O = I> {
  /** valibot's kind of object. */
  readonly kind: "schema";
  /** The schema's type (`object`, `string`…). */
  readonly type: string;
  /** Asynchronous. */
  readonly async: true;
  /** Its Standard Schema member. */
  readonly "~standard": SchemaStandard<I, O>;
}

/** What a schema takes (valibot's `InferInput`). */
export type SchemaInput<S extends Schema | AsyncSchema> = NonNullable<
  S["~standard"]["types"]
>["input"];

/** What a schema gives once the value is valid (valibot's `InferOutput`). */
export type SchemaOutput<S extends Schema | AsyncSchema> = NonNullable<
  S["~standard"]["types"]
>["output"];

/**
 * The valibot schema a {@link Schema} is (the runtime takes valibot's schemas only).
 *
 * @param schema the schema
 * @returns it, as valibot's type
 */
export function valibotSchema(schema: Schema): v.GenericSchema;
/**
 * The valibot schema an async schema is.
 *
 * @param schema the schema
 * @returns it, as valibot's type
 */
export function valibotSchema(schema: Schema | AsyncSchema): v.GenericSchema | v.GenericSchemaAsync;
export function valibotSchema(
  schema: Schema | AsyncSchema,
): v.GenericSchema | v.GenericSchemaAsync {
  // The one cast: both interfaces are the part of valibot's schemas the API names.
  return schema as unknown as v.GenericSchema | v.GenericSchemaAsync;
}

/**
 * Checks a value against a schema (valibot's `safeParse`).
 *
 * @param schema the schema
 * @param value the value
 * @returns valibot's result: `success` with `output`, or `issues`
 */
export function safeParse<S extends Schema>(
  schema: S,
  value: unknown,
): v.SafeParseResult<v.GenericSchema<SchemaInput<S>, SchemaOutput<S>>> {
  return v.safeParse(valibotSchema(schema), value) as v.SafeParseResult<
    v.GenericSchema<SchemaInput<S>, SchemaOutput<S>>
  >;
}
