/**
 * The layout STYLE.md draws: the HTTP kit imports no feature, and no module imports itself
 * through others (type imports count).
 */
import { test } from "uvu";
import * as assert from "uvu/assert";

const ROOT = new URL("../", import.meta.url).href;
const FEATURES = ["tasks", "parallel", "scheduler", "dashboard", "consumers"].map((f) =>
  `src/${f}/`
);

interface _Info {
  modules: {
    specifier: string;
    dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
  }[];
}

/** The repo's own import graph, from `deno info --json` of the entry files. */
async function graph(): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  for (
    const entry of [
      "mod.ts",
      "src/testing.ts",
      "src/tasks/lease-thread.ts",
      "src/parallel/thread.ts",
    ]
  ) {
    const { stdout } = await new Deno.Command("deno", {
      args: ["info", "--json", entry],
      cwd: new URL(ROOT).pathname,
      stdout: "piped",
      stderr: "null",
    }).output();
    const info: _Info = JSON.parse(new TextDecoder().decode(stdout));
    for (const m of info.modules) {
      if (!m.specifier.startsWith(ROOT)) continue;
      const deps = out.get(m.specifier.slice(ROOT.length)) ?? new Set();
      for (const d of m.dependencies ?? []) {
        for (const s of [d.code?.specifier, d.type?.specifier]) {
          if (s?.startsWith(ROOT)) deps.add(s.slice(ROOT.length));
        }
      }
      out.set(m.specifier.slice(ROOT.length), deps);
    }
  }
  return out;
}

/** Groups of modules that import one another in a circle (Tarjan's algorithm). */
function cycles(g: Map<string, Set<string>>): string[][] {
  let next = 0;
  const index = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], onStack = new Set<string>(), found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of g.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const group: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      group.push(w);
    } while (w !== v);
    if (group.length > 1) found.push(group.sort());
  };
  for (const v of g.keys()) if (!index.has(v)) visit(v);
  return found;
}

const g = await graph();

test("the HTTP kit (src/http/) imports no feature", () => {
  const wrong = [...g].flatMap(([from, deps]) =>
    from.startsWith("src/http/")
      ? [...deps].filter((d) => FEATURES.some((f) => d.startsWith(f))).map((d) => `${from} → ${d}`)
      : []
  );
  assert.equal(wrong, []);
});

test("no import cycle among the runtime's modules (the example is the package's user)", () => {
  const runtime = new Map([...g].filter(([m]) => !m.startsWith("src/example/")));
  assert.ok(runtime.size > 50, `only ${runtime.size} modules found`);
  assert.equal(cycles(runtime), []);
});

test.run();
