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
    "src/scheduler/clock.ts",
  );
  assert.is(code, 0, text);
  // testRuntime, runTask, deliver, runSchedules, ManualClock
  const passed = Number(/ok \| (\d+) passed \| 0 failed/.exec(text)?.[1] ?? 0);
  assert.ok(passed >= 5, text);
});

test.run();
