/**
 * Fuzzes every route of `/openapi.json` with fast-check: requests built from each operation's
 * parameters and body schema (valid, nearly valid and junk), on the embedded store and on real
 * Redis. No answer may be a 5xx, and every 4xx is problem+json carrying its status and request id.
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { createApp } from "../../src/app.ts";
import { exampleSystem } from "../../src/example/mod.ts";
import { backends, cleanup, testRuntime } from "../helpers.ts";

/** Cases per operation (per backend). */
const RUNS = Number(Deno.env.get("FUZZ_RUNS") ?? 40);

type Schema = {
  type?: string | string[];
  enum?: unknown[];
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
};

interface Parameter {
  in: "path" | "query" | "header";
  name: string;
  required?: boolean;
  schema?: Schema;
}

interface Operation {
  method: string;
  path: string;
  parameters: Parameter[];
  body?: Schema;
}

const junk = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.constantFrom("", " ", "%", "%E0%A4%A", "..", "null", "0", "-1", "1e309", "\u0000", "💥"),
);

/** Names the routes know (filled per run with the refcodes and ids of real records). */
const KNOWN: string[] = [
  "primes",
  "heartbeat",
  "orders-report-nightly",
  "sleep",
  "orders-report",
  "orders",
  "events",
];

/** Mostly `valid`, now and then `invalid`: deep valid values stay likely, every leaf may break. */
const mostly = (valid: fc.Arbitrary<unknown>, invalid: fc.Arbitrary<unknown>) =>
  fc.oneof({ weight: 8, arbitrary: valid }, { weight: 1, arbitrary: invalid });

/** Values for a schema: mostly what it describes (edges included), sometimes anything. */
function fromSchema(schema: Schema | undefined, depth = 0): fc.Arbitrary<unknown> {
  const any = fc.jsonValue({ maxDepth: 2 });
  if (!schema || depth > 4) return any;
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (alternatives) return fc.oneof(...alternatives.map((s) => fromSchema(s, depth + 1)), any);
  if (schema.allOf?.length) return fromSchema(schema.allOf[0], depth + 1);
  if (schema.enum) return mostly(fc.constantFrom(...schema.enum), junk);
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case "string":
      if (schema.pattern) return mostly(fc.stringMatching(new RegExp(schema.pattern)), junk);
      if (schema.format === "date-time") {
        return mostly(
          fc.date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true })
            .map((d) => d.toISOString()),
          junk,
        );
      }
      return mostly(
        fc.oneof(
          fc.string({
            minLength: schema.minLength ?? 0,
            maxLength: Math.min(schema.maxLength ?? 40, 300),
          }),
          fc.constantFrom(...KNOWN),
        ),
        fc.oneof(fc.string({ maxLength: 300 }), junk),
      );
    case "integer":
    case "number":
      return mostly(
        fc.oneof(
          fc.integer({
            min: Math.max(schema.minimum ?? -1e6, -1e15),
            max: Math.min(schema.maximum ?? 1e6, 1e15),
          }),
          fc.constantFrom(schema.minimum ?? 0, schema.maximum ?? 1),
        ),
        fc.oneof(fc.constantFrom(-1, 0.5, 1e300, -0), fc.double({ noNaN: true }), junk),
      );
    case "boolean":
      return mostly(fc.boolean(), junk);
    case "array":
      return mostly(fc.array(fromSchema(schema.items, depth + 1), { maxLength: 5 }), any);
    case "object": {
      const properties = Object.entries(schema.properties ?? {});
      const object = fc.record(
        Object.fromEntries(properties.map(([k, s]) => [k, fromSchema(s, depth + 1)])),
        { requiredKeys: (schema.required ?? []).filter(() => true) },
      );
      const extra = fc.tuple(object, fc.string({ maxLength: 12 }), any).map(([o, k, v]) => ({
        ...(o as object),
        [k]: v,
      }));
      return mostly(object, fc.oneof(extra, any));
    }
    default:
      return any;
  }
}

function operations(doc: { paths: Record<string, Record<string, any>> }): Operation[] {
  const out: Operation[] = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      out.push({
        method: method.toUpperCase(),
        path,
        parameters: op.parameters ?? [],
        body: op.requestBody?.content?.["application/json"]?.schema,
      });
    }
  }
  // Served but not in the document: probes, metrics, the document and the page.
  for (const path of ["/healthz", "/readyz", "/metrics", "/openapi.json", "/dashboard"]) {
    out.push({ method: "GET", path, parameters: [] });
  }
  return out;
}

/** A request for an operation: its parameters, a body and a content type, all fuzzed. */
function requestFor(op: Operation): fc.Arbitrary<{ url: string; init: RequestInit }> {
  const value = (p: Parameter) =>
    // `?wait=N` holds the answer up to 30 s: a case may wait at most a fraction of a second.
    p.name === "wait"
      ? fc.constantFrom("0", "0.1", "abc", "-1", "31", "", "1e3")
      : fromSchema(p.schema).map((v) => (typeof v === "string" ? v : JSON.stringify(v)));
  const params = fc.record(
    Object.fromEntries(op.parameters.map((p) => [`${p.in}:${p.name}`, value(p)])),
    { requiredKeys: op.parameters.filter((p) => p.in === "path").map((p) => `${p.in}:${p.name}`) },
  ) as fc.Arbitrary<Record<string, string>>;
  const body = op.body
    ? fc.oneof(
      { weight: 5, arbitrary: fromSchema(op.body).map((v) => JSON.stringify(v)) },
      { weight: 1, arbitrary: fc.string({ maxLength: 60 }) },
      { weight: 1, arbitrary: fc.constantFrom("", "{", "[]", "null", '{"__proto__":{"x":1}}') },
    )
    : fc.option(fc.jsonValue({ maxDepth: 1 }).map((v) => JSON.stringify(v)), { freq: 4 });
  const type = fc.oneof(
    { weight: 6, arbitrary: fc.constant("application/json") },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        undefined,
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=utf-8",
        "application/problem+json",
        "multipart/form-data; boundary=x",
      ),
    },
  );
  return fc.tuple(params, body, type).map(([p, b, t]) => {
    let path = op.path;
    const query = new URLSearchParams();
    const headers: Record<string, string> = {};
    for (const [key, v] of Object.entries(p)) {
      const [where, name] = key.split(/:(.*)/s);
      if (where === "path") path = path.replace(`{${name}}`, encodeURIComponent(v));
      else if (where === "query") query.set(name, v);
      else if (/^[\t\x20-\x7e]*$/.test(v)) headers[name] = v;
    }
    if (t !== undefined && b !== null) headers["content-type"] = t;
    const qs = query.size ? `?${query}` : "";
    const init: RequestInit = { method: op.method, headers };
    if (b !== null && op.method !== "GET" && op.method !== "HEAD") init.body = b;
    return { url: `http://svc.test${path}${qs}`, init };
  });
}

for (const backend of backends()) {
  const test = suite(`fuzz on ${backend.name}`);
  test.after(cleanup);

  test(`every route of /openapi.json: no 5xx, problem+json on every 4xx (${RUNS} cases each)`, async () => {
    const system = exampleSystem();
    const rt = testRuntime({ redis: backend.name === "redis", system });
    const app = createApp(rt, { api: true, services: () => [], routes: system.routeModules });
    const doc = await (await app.request("/openapi.json")).json();
    const ops = operations(doc);
    // Real records, so the fuzzed paths also reach existing tasks, runs and orders.
    const make = async (path: string, body: unknown) =>
      await (await app.request(path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      })).json();
    KNOWN.push(
      (await make("/tasks/sleep", { ms: 60_000 })).refcode,
      (await make("/tasks/orders-report", {})).refcode,
      (await make("/parallel-tasks", {
        task_id: "primes",
        worker_count: 1,
        input: { from: 0, to: 1000 },
      })).refcode,
      (await make("/orders", { item: "x", qty: 1 })).id,
    );
    assert.ok(ops.length >= 20, `${ops.length} operations`);
    let requests = 0;
    const statuses = new Map<string, number>();
    for (const op of ops) {
      await fc.assert(
        fc.asyncProperty(requestFor(op), async ({ url, init }) => {
          requests++;
          const res = await app.request(url, init);
          const tally = `${op.method} ${op.path} ${res.status}`;
          statuses.set(tally, (statuses.get(tally) ?? 0) + 1);
          const where = `${init.method} ${url} ${JSON.stringify(init.headers)} ${
            String(init.body ?? "").slice(0, 200)
          } → ${res.status}`;
          if (res.status >= 500) assert.unreachable(`${where}: ${await res.text()}`);
          if (res.status >= 400) {
            assert.is(res.headers.get("content-type"), "application/problem+json", where);
            const problem = await res.json();
            assert.is(problem.status, res.status, where);
            assert.type(problem.detail, "string", where);
            assert.type(problem.request_id, "string", where);
          } else {
            await res.body?.cancel();
          }
        }),
        { numRuns: RUNS, endOnFailure: true },
      );
    }
    console.log(`fuzz on ${backend.name}: ${requests} requests over ${ops.length} operations`);
    if (Deno.env.get("FUZZ_DEBUG")) console.log(Object.fromEntries([...statuses].sort()));
  });

  test.run();
}
