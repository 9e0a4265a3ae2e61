/**
 * The testing entry's JSDoc examples, type-checked and run (`deno test --doc`), so what the
 * documentation shows works; and `deno doc --lint` of the package's entries.
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

test("every JSDoc example of the testing entry type-checks and passes", async () => {
  const { code, text } = await deno(
    "test",
    "-A",
    "--doc",
    "src/testing.ts",
    "src/async/clock.ts",
  );
  assert.is(code, 0, text);
  // testRuntime, runTask, deliver, runSchedules, ManualClock
  const passed = Number(/ok \| (\d+) passed \| 0 failed/.exec(text)?.[1] ?? 0);
  assert.ok(passed >= 5, text);
});

test("deno doc --lint of the entries finds nothing of ours (scripts/doc-lint.ts)", async () => {
  const { code, text } = await deno("run", "-A", "scripts/doc-lint.ts");
  assert.is(code, 0, text);
  assert.match(text, /: 0 problems/);
});

test("scripts/doc-lint.ts fails on an undocumented export and a private type", async () => {
  const dir = await Deno.makeTempDir({ prefix: "svc-doc-lint-" });
  try {
    await Deno.writeTextFile(
      `${dir}/mod.ts`,
      "/** @module m */\ninterface Hidden { x: number }\n" +
        "/** f @returns h */\nexport function f(): Hidden { return { x: 1 }; }\n" +
        "export const undocumented = 1;\n",
    );
    const { code, text } = await deno("run", "-A", "scripts/doc-lint.ts", `${dir}/mod.ts`);
    assert.is(code, 1, text);
    assert.match(text, "missing-jsdoc");
    assert.match(text, "references private type 'Hidden'");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
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
