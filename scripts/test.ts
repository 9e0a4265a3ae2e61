/**
 * @module The test command: starts Redis and Kafka if absent, runs every `test/**\/*.test.ts`
 * file as its own process (`TEST_JOBS` of them at a time, default 3), and ends with one line
 * `N passed, N failed, N skipped`.
 *
 * Usage: `deno task test [substring…]` (only files whose path contains a substring).
 */
const ROOT = new URL("../", import.meta.url).pathname;
/** A positive integer from the environment, or the fallback; anything else stops with exit 2. */
function positiveInt(name: string, fallback: number): number {
  const raw = Deno.env.get(name);
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < 1) {
    console.error(`${name} must be a positive integer, not "${raw}"`);
    Deno.exit(2);
  }
  return value;
}
const FILE_TIMEOUT_MS = positiveInt("TEST_FILE_TIMEOUT_MS", 15 * 60_000);
/** Files run at once (see below). */
const JOBS = positiveInt("TEST_JOBS", 3);

async function ensure(script: string): Promise<boolean> {
  const out = await new Deno.Command("bash", {
    args: [`${ROOT}scripts/${script}`],
    cwd: ROOT,
    stdin: "null",
  })
    .output();
  const dec = new TextDecoder();
  if (out.code !== 0) {
    console.error(
      `${script} failed (exit ${out.code}):\n${dec.decode(out.stdout)}${dec.decode(out.stderr)}`,
    );
  }
  return out.code === 0;
}

async function* walk(dir: string): AsyncGenerator<string> {
  const entries = [];
  for await (const e of Deno.readDir(dir)) entries.push(e);
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) yield* walk(path);
    else if (e.name.endsWith(".test.ts")) yield path;
  }
}

function summary(text: string): { total: number; passed: number; skipped: number } | undefined {
  // deno-lint-ignore no-control-regex
  const plain = text.replace(/\x1b\[[0-9;]*m/g, "");
  const total = /Total:\s+(\d+)/.exec(plain);
  const passed = /Passed:\s+(\d+)/.exec(plain);
  const skipped = /Skipped:\s+(\d+)/.exec(plain);
  if (!total || !passed) return undefined;
  return { total: Number(total[1]), passed: Number(passed[1]), skipped: Number(skipped?.[1] ?? 0) };
}

const filters = Deno.args;
const files: string[] = [];
for await (const f of walk(`${ROOT}test`)) {
  const rel = f.slice(ROOT.length);
  if (filters.length === 0 || filters.some((s) => rel.includes(s))) files.push(rel);
}

// The 3-node cluster and the SASL_SSL broker run only when a test needs them; their tests use
// Redis too (orders are stored there).
const needCluster = files.some((f) => f.includes(".kafka-cluster."));
const needSasl = files.some((f) => f.includes(".kafka-sasl."));
const needRedis = needCluster || needSasl ||
  files.some((f) => f.includes(".redis.") || f.includes(".e2e."));
const needKafka = files.some((f) => f.includes(".kafka.") || f.includes(".e2e."));
if (needRedis) await ensure("redis.sh");
if (needKafka) await ensure("kafka.sh");
if (needCluster) await ensure("kafka-cluster.sh");
if (needSasl) await ensure("kafka-sasl.sh");
// The matrix: the behavioural suites of tasks, consumers, schedules and parallel tasks (the files
// whose tests run on `backends()`) run a second time with Redis being the 6-node cluster.
// TEST_REDIS_MATRIX=off leaves it out.
const MATRIX_DIRS = ["test/tasks/", "test/consumers/", "test/scheduler/", "test/parallel/"];
const CLUSTER_URL = Deno.env.get("TEST_REDIS_CLUSTER_URL") ?? "redis://127.0.0.1:7000";
interface Run {
  file: string;
  label: string;
  env: Record<string, string>;
}
/** Each file's source, read once: the matrix and the `alone` mark are read from it. */
const sources = new Map<string, string>();
for (const f of files) sources.set(f, await Deno.readTextFile(`${ROOT}${f}`));
const runs: Run[] = files.map((file) => ({
  file,
  label: file,
  env: {},
}));
if (Deno.env.get("TEST_REDIS_MATRIX") !== "off") {
  for (const file of files) {
    if (!MATRIX_DIRS.some((d) => file.startsWith(d)) || file.includes(".redis-cluster.")) continue;
    if (!sources.get(file)!.includes("backends()")) continue;
    runs.push({
      file,
      label: `${file} [redis-cluster]`,
      env: { TEST_REDIS_URL: CLUSTER_URL, TEST_BACKENDS: "redis" },
    });
  }
}
// Engines only some tests need: started on first use, left running for the next run.
if (runs.some((r) => r.file.includes(".redis-cluster.") || r.env.TEST_REDIS_URL === CLUSTER_URL)) {
  await ensure("redis-cluster.sh");
}
if (files.some((f) => f.includes(".redis-sentinel."))) await ensure("redis-sentinel.sh");
if (files.some((f) => f.includes(".browser."))) await ensure("chromium.sh");

let passed = 0, failed = 0, skipped = 0;
const failures: string[] = [];
const started = Date.now();

/** Runs one file in its own process and prints its line (and its output's tail if it failed). */
async function runFile({ file, label, env }: Run): Promise<void> {
  const t0 = Date.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", file],
    cwd: ROOT,
    env: {
      TEST_REDIS_URL: Deno.env.get("TEST_REDIS_URL") ?? "redis://127.0.0.1:6379",
      TEST_KAFKA_BROKERS: Deno.env.get("TEST_KAFKA_BROKERS") ?? "127.0.0.1:9092",
      TEST_REDIS_CLUSTER_URL: CLUSTER_URL,
      TEST_REDIS_SENTINEL_URL: Deno.env.get("TEST_REDIS_SENTINEL_URL") ??
        "redis+sentinel://127.0.0.1:26380,127.0.0.1:26381,127.0.0.1:26382/svc",
      NO_COLOR: "1",
      ...env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, FILE_TIMEOUT_MS);
  const out = await child.output();
  clearTimeout(timer);
  const dec = new TextDecoder();
  const text = dec.decode(out.stdout) + dec.decode(out.stderr);
  const s = summary(text);
  const seconds = ((Date.now() - t0) / 1000).toFixed(1);
  let fileFailed: number;
  if (s) {
    passed += s.passed;
    skipped += s.skipped;
    fileFailed = s.total - s.passed - s.skipped;
    if (out.code !== 0 && fileFailed === 0) fileFailed = 1;
  } else {
    fileFailed = 1;
  }
  failed += fileFailed;
  const mark = fileFailed > 0 ? "FAIL" : "ok  ";
  const lines = [
    `${mark} ${label} (${s ? `${s.passed}/${s.total}` : `exit ${out.code}`}, ${seconds}s)`,
  ];
  if (fileFailed > 0) {
    failures.push(label);
    lines.push(text.split("\n").slice(-80).map((l) => `     ${l}`).join("\n"));
  }
  console.log(lines.join("\n"));
}

// Files run JOBS at a time (TEST_JOBS, default 3: most files wait on brokers, timers and child
// processes far more than they compute). Files that share an engine a test disrupts or that is
// one of a kind run one after another in a lane: the Redis Cluster (its failover test stops a
// node; the matrix runs use it), the 3-broker Kafka (brokers are stopped), the Sentinel group.
// Lanes start first since they are the longest chains; then the rest, the slowest kinds first.
const laneOf = (r: Run): string | undefined =>
  r.env.TEST_REDIS_URL === CLUSTER_URL || r.file.includes(".redis-cluster.")
    ? "redis-cluster"
    : r.file.includes(".kafka-cluster.")
    ? "kafka-cluster"
    : r.file.includes(".redis-sentinel.")
    ? "redis-sentinel"
    : undefined;
const WEIGHT = [".kafka.", ".e2e.", ".kafka-sasl.", ".redis.", ".browser."];
const weight = (r: Run) => {
  const i = WEIGHT.findIndex((w) => r.file.includes(w));
  return i < 0 ? WEIGHT.length : i;
};
// A file whose test needs the machine to itself (it measures CPU, or a lease thread must renew
// within a tight lease) says so with a line `// test-runner: alone (why)`; such files run one at
// a time with nothing beside them, before the rest.
const ALONE = /^\/\/ test-runner: alone\b/m;
const alone: Run[] = [], rest: Run[] = [];
const lanes = new Map<string, Run[]>();
for (const r of runs) {
  const lane = laneOf(r);
  if (ALONE.test(sources.get(r.file)!)) alone.push(r);
  else if (lane === undefined) rest.push(r);
  else lanes.set(lane, [...lanes.get(lane) ?? [], r]);
}
for (const r of alone) await runFile(r);
const chains: Run[][] = [
  ...[...lanes.values()].sort((a, b) => b.length - a.length),
  // Array.prototype.sort is stable: within a weight, files keep their order.
  ...rest.sort((a, b) => weight(a) - weight(b)).map((r) => [r]),
];
let next = 0;
await Promise.all(Array.from({ length: Math.min(JOBS, chains.length) }, async () => {
  while (next < chains.length) {
    for (const run of chains[next++]) await runFile(run);
  }
}));
console.log(`\n${runs.length} files in ${((Date.now() - started) / 1000).toFixed(0)}s`);
if (failures.length) console.log(`failing files: ${failures.join(", ")}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
Deno.exit(failed > 0 ? 1 : 0);
