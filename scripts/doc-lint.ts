/**
 * @module `deno doc --lint` of the package's entries (`mod.ts`, `src/testing.ts`), failing on
 * every problem of ours. One kind is left out: `private-type-ref` to a type of an npm library
 * the API is written against (valibot's schemas, Hono's app and context, prom-client's
 * registry). Deno 2.9 resolves npm packages to `file:` modules, so its doc linter takes their
 * exported types for private ones of this package (denoland/deno#27364 was fixed for `jsr:`
 * and `https:` imports only); a reference is left out only when no file of ours (`src/`, or
 * the folder of an entry from outside the repository) declares a type of that name.
 *
 * Usage: `deno run -A scripts/doc-lint.ts [entry…]` (part of `deno task ok`).
 */
const ROOT = new URL("../", import.meta.url).pathname;
const ENTRIES = Deno.args.length ? Deno.args : ["mod.ts", "src/testing.ts"];

async function ourTypeNames(dir: string, out = new Set<string>()): Promise<Set<string>> {
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) await ourTypeNames(path, out);
    else if (entry.name.endsWith(".ts")) {
      const text = await Deno.readTextFile(path);
      const declaration =
        /^\s*(?:export\s+)?(?:declare\s+)?(?:abstract\s+)?(?:interface|type|class|enum)\s+([A-Za-z_$][\w$]*)(?=\s*(?:[<={]|extends\b|implements\b))/gm;
      for (const m of text.matchAll(declaration)) {
        out.add(m[1]);
      }
    }
  }
  return out;
}

const out = await new Deno.Command(Deno.execPath(), {
  args: ["doc", "--lint", ...ENTRIES],
  cwd: ROOT,
  env: { NO_COLOR: "1" },
  stdout: "null",
  stderr: "piped",
}).output();
const text = new TextDecoder().decode(out.stderr);
const blocks = text.split(/\n(?=error\[)/).filter((b) => b.startsWith("error["));
// Our declarations: the runtime's, and those beside an entry from outside the repository.
const ours = await ourTypeNames(`${ROOT}src`);
for (const entry of ENTRIES) {
  const path = entry.startsWith("/") ? entry : `${ROOT}${entry}`;
  const dir = path.slice(0, path.lastIndexOf("/"));
  if (!`${dir}/`.startsWith(ROOT)) await ourTypeNames(dir, ours);
}
const tolerated = new Set<string>();
const problems: string[] = [];
for (const block of blocks) {
  const ref = /^error\[private-type-ref\]: .* references private type '([^']+)'/.exec(block);
  if (ref && !ours.has(ref[1])) tolerated.add(ref[1]);
  else problems.push(block.trim());
}
if (out.code !== 0 && blocks.length === 0) {
  console.error(text);
  Deno.exit(1);
}
for (const p of problems) console.error(`${p}\n`);
console.log(
  `deno doc --lint ${ENTRIES.join(" ")}: ${problems.length} problems` +
    (tolerated.size ? `; left out: npm libraries' types ${[...tolerated].sort().join(", ")}` : ""),
);
Deno.exit(problems.length ? 1 : 0);
