/**
 * @module `deno task bench <name>`: runs `scripts/bench/<name>.ts` (http, tasks, consumers,
 * scheduler, parallel), each comparing us with a baseline in the same run. `deno task bench all`
 * runs every one in turn and ends with one table of what each measured against its baseline
 * (ours, baseline, ratio, target, met), from the `SUMMARY` lines they print.
 */
import { met, type SummaryRow } from "./bench/_lib.ts";

const names = ["http", "tasks", "consumers", "scheduler", "parallel", "redis-wait"];
/**
 * What `all` passes each benchmark: its defaults, a little shorter where they run long; http
 * longer (five rounds: its rounds swing by a third on 2 shared cores, and a median of three
 * rounds moved the GET ratio from 0.73× to 0.98× between two runs of the same code).
 */
const ALL_ARGS: Record<string, string[]> = {
  http: ["--rounds", "5"],
  tasks: ["--rounds", "3", "--system-rounds", "3"], // the shipped system's one round swung by 30 %
  consumers: ["--rounds", "2"],
  scheduler: ["100"],
  parallel: ["--rounds", "3"],
  "redis-wait": [],
};
const name = Deno.args[0];
if (!name || !(names.includes(name) || name === "all")) {
  console.error(`Usage: deno task bench <${names.join("|")}|all>`);
  Deno.exit(2);
}

/** Runs one benchmark, passing its output through; returns its exit code and summary rows. */
async function run(bench: string, args: string[]): Promise<[number, SummaryRow[]]> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(`./bench/${bench}.ts`, import.meta.url).pathname, ...args],
    stdin: "inherit",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const rows: SummaryRow[] = [];
  let buf = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.startsWith("SUMMARY ")) rows.push(JSON.parse(line.slice(8)));
      else console.log(line);
    }
  }
  if (buf) console.log(buf);
  return [(await child.status).code, rows];
}

if (name !== "all") {
  const [code, rows] = await run(name, Deno.args.slice(1));
  if (rows.length) printTable(rows);
  Deno.exit(code);
}

const started = new Date();
const all: SummaryRow[] = [];
const failed: string[] = [];
for (const bench of names) {
  console.log(`\n=== deno task bench ${bench} ${ALL_ARGS[bench].join(" ")}`);
  const [code, rows] = await run(bench, ALL_ARGS[bench]);
  // The scheduler benchmark exits 1 when its target is missed; its row says so.
  if (code !== 0 && rows.length === 0) failed.push(`${bench} (exit ${code})`);
  all.push(...rows);
}
console.log(
  `\n## deno task bench all — ${started.toISOString().slice(0, 16).replace("T", " ")} UTC, ` +
    `${Math.round((Date.now() - started.getTime()) / 60_000)} min\n`,
);
printTable(all);
if (failed.length) console.log(`\nno figures from: ${failed.join(", ")}`);

function printTable(rows: SummaryRow[]): void {
  const num = (x: number | undefined, unit: string) =>
    x === undefined || !Number.isFinite(x)
      ? "–"
      : `${x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)} ${unit}`;
  console.log("| bench | measure | ours | baseline | ratio | target | met |");
  console.log("|---|---|---|---|---|---|---|");
  for (const r of rows) {
    const ratio = r.baseline ? `${(r.ours / r.baseline).toFixed(2)}×` : "–";
    const sign = r.better === "higher" ? "≥" : "≤";
    const target = r.target === undefined
      ? "–"
      : r.targetOn === "ours"
      ? `${sign} ${r.target} ${r.unit}`
      : `${sign} ${r.target}×`;
    const ok = met(r);
    console.log(
      `| ${r.bench} | ${r.what} | ${num(r.ours, r.unit)} | ${
        r.baseline === undefined ? "–" : `${num(r.baseline, r.unit)} (${r.baselineName})`
      } | ${ratio} | ${target} | ${ok === undefined ? "–" : ok ? "yes" : "**no**"} |`,
    );
  }
}
