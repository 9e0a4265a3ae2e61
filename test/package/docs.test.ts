/**
 * The JSDoc examples of the testing entry, the route types and the schema types, type-checked
 * and run (`deno test --doc`), so what the documentation shows works; and `deno doc --lint` of
 * the package's entries.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ROOT } from "../helpers.ts";

async function deno(...args: string[]): Promise<{ code: number; text: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, text: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

test("every JSDoc example of the testing entry and the route and schema types passes", async () => {
  const { code, text } = await deno(
    "test",
    "-A",
    "--doc",
    "src/testing.ts",
    "src/async/clock.ts",
    "src/http/routes.ts",
    "src/schema.ts",
  );
  assert.is(code, 0, text);
  // testRuntime, runTask, deliver, runSchedules, ManualClock; Schema, RouteModule, validate,
  // describeRoute, jsonContent, problem
  const passed = Number(/ok \| (\d+) passed \| 0 failed/.exec(text)?.[1] ?? 0);
  assert.ok(passed >= 11, text);
});

test("deno doc --lint of the entries reports nothing", async () => {
  const { code, text } = await deno("doc", "--lint", "mod.ts", "src/testing.ts");
  assert.is(code, 0, text);
  assert.not.match(text, "error[");
});

test("an app's module graph holds the runtime's thread files, so deno compile embeds them unasked", async () => {
  const { code, text } = await deno("info", "--json", "docs/guide/main.ts");
  assert.is(code, 0, text);
  const modules = (JSON.parse(text).modules as { specifier: string }[]).map((m) => m.specifier);
  for (const file of ["src/parallel/thread.ts", "src/tasks/lease-thread.ts"]) {
    assert.ok(modules.includes(`file://${ROOT}${file}`), `${file} in the graph`);
  }
});

test("deno publish --dry-run passes and ships the runtime only", async () => {
  const { code, text } = await deno("publish", "--dry-run", "--allow-dirty");
  assert.is(code, 0, text);
  assert.not.match(text, "warning[");
  const shipped = [...text.matchAll(/^\s+(file:\/\/\S+)/gm)].map((m) =>
    m[1].slice(`file://${ROOT}`.length)
  );
  assert.ok(shipped.includes("mod.ts") && shipped.includes("src/testing.ts"), shipped.join(" "));
  assert.ok(
    shipped.includes("src/parallel/thread.ts") && shipped.includes("src/tasks/lease-thread.ts"),
  );
  const foreign = shipped.filter((f) =>
    !/^(mod\.ts|deno\.json|README\.md|LICENSE|src\/.*\.ts)$/.test(f) || f.startsWith("src/example/")
  );
  assert.equal(foreign, [], "no tests, scripts, deploy files or example");
});

test.run();
