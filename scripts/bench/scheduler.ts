/**
 * @module `deno task bench scheduler [ticks]`: lateness (action start − scheduled time) of an
 * every-second schedule on three scheduler replicas sharing Redis, beside a bare `setTimeout`
 * loop aimed at the same ticks in the same run; counts missed and doubled ticks.
 *
 * Needs Redis (`REDIS_URL`, default `redis://127.0.0.1:6379`; `scripts/redis.sh` starts one).
 * 200 ticks by default (a little over 3 minutes).
 */
import { RedisStore } from "../../src/infra/redis.ts";
import { key } from "../../src/infra/store.ts";
import { createLogger } from "../../src/log.ts";
import { summaryRow } from "./_lib.ts";

const TICKS = Number(Deno.args[0] ?? 200);
const REPLICAS = 3;
const REDIS_URL = Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379";
const ROOT = new URL("../../", import.meta.url).pathname;
const prefix = `bench-sched-${crypto.randomUUID().slice(0, 8)}`;
const listKey = key(prefix, "bench", "ticks");

const store = new RedisStore(REDIS_URL, createLogger("error"));
for (let i = 0; !(await store.check()).ok; i++) {
  if (i === 50) {
    console.error(`Redis is not reachable at ${REDIS_URL} (start it with scripts/redis.sh)`);
    Deno.exit(1);
  }
  await new Promise((r) => setTimeout(r, 100));
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function startReplica(): { child: Deno.ChildProcess; ready: Promise<void> } {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}scripts/bench/_scheduler-replica.ts`],
    env: { ROLE: "scheduler", PORT: "0", REDIS_URL, KEY_PREFIX: prefix, LOG_LEVEL: "info" },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let onReady!: () => void;
  const ready = new Promise<void>((r) => (onReady = r));
  // Read every line to the end, so the replica never writes into a closed or full pipe.
  (async () => {
    let buf = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buf = (buf + chunk).slice(-4096);
      if (buf.includes('"listening"')) onReady();
    }
  })();
  return { child, ready };
}

/** The baseline: one bare setTimeout per tick, aimed at each whole second. */
async function bareLoop(from: number, to: number): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (let tick = from; tick <= to; tick += 1000) {
    await new Promise((r) => setTimeout(r, Math.max(0, tick - Date.now())));
    out.set(tick, performance.timeOrigin + performance.now() - tick);
  }
  return out;
}

console.log(`scheduler benchmark: ${TICKS} one-second ticks, ${REPLICAS} replicas on ${REDIS_URL}`);
const replicas = Array.from({ length: REPLICAS }, startReplica);
await Promise.all(replicas.map((r) => r.ready));
// The window starts two seconds after every replica listens, and is the same for both loops.
const first = Math.ceil(Date.now() / 1000) * 1000 + 2000;
const last = first + (TICKS - 1) * 1000;
const bare = await bareLoop(first, last);
await new Promise((r) => setTimeout(r, 1500));
for (const r of replicas) r.child.kill("SIGTERM");
await Promise.all(replicas.map((r) => r.child.status));

const entries = await store.command(["LRANGE", listKey, 0, -1]) as string[];
await store.command(["DEL", listKey]);
let cursor = "0";
do {
  const [next, keys] = await store.command([
    "SCAN",
    cursor,
    "MATCH",
    `${prefix}:*`,
    "COUNT",
    1000,
  ]) as [
    string,
    string[],
  ];
  cursor = String(next);
  if (keys.length) await store.command(["UNLINK", ...keys]);
} while (cursor !== "0");
await store.close();

const runs = new Map<number, number[]>();
const byReplica = new Map<string, number>();
for (const e of entries) {
  const [tick, lateness, pid] = e.split(":").map(Number);
  if (tick < first || tick > last) continue;
  runs.set(tick, [...(runs.get(tick) ?? []), lateness]);
  byReplica.set(String(pid), (byReplica.get(String(pid)) ?? 0) + 1);
}
let missed = 0;
let doubled = 0;
const ours: number[] = [];
for (let tick = first; tick <= last; tick += 1000) {
  const got = runs.get(tick) ?? [];
  if (got.length === 0) missed++;
  if (got.length > 1) doubled += got.length - 1;
  if (got.length) ours.push(got[0]);
}
ours.sort((a, b) => a - b);
const base = [...bare.values()].sort((a, b) => a - b);

const ms = (x: number | undefined) => (x === undefined ? "-" : x.toFixed(1));
const row = (name: string, xs: number[], m: number, d: number) =>
  [name, xs.length, ms(percentile(xs, 50)), ms(percentile(xs, 99)), ms(xs.at(-1)), m, d]
    .join(" | ").replace(/^/, "| ").concat(" |");
console.log("\n| loop | ticks | p50 ms | p99 ms | max ms | missed | double |");
console.log("|---|---|---|---|---|---|---|");
console.log(row(`scheduler, ${REPLICAS} replicas, Redis claim`, ours, missed, doubled));
console.log(row("bare setTimeout, same ticks", base, 0, 0));
const diff = (p: number) => {
  const d = percentile(ours, p) - percentile(base, p);
  return `${d >= 0 ? "+" : "−"}${Math.abs(d).toFixed(1)} ms`;
};
console.log(
  `\nscheduler vs bare setTimeout: p50 ${diff(50)}, p99 ${diff(99)}; ` +
    `runs per replica: ${[...byReplica.values()].join(" / ")}`,
);
const ok = missed === 0 && doubled === 0 && percentile(ours, 99) <= 10;
summaryRow({
  bench: "scheduler",
  what: `tick lateness p99, ${REPLICAS} replicas`,
  ours: percentile(ours, 99),
  baseline: percentile(base, 99),
  baselineName: "bare setTimeout",
  better: "lower",
  target: 10,
  targetOn: "ours",
  unit: "ms",
});
summaryRow({
  bench: "scheduler",
  what: "ticks missed or run twice",
  ours: missed + doubled,
  better: "lower",
  target: 0,
  targetOn: "ours",
  unit: "ticks",
});
console.log(
  ok
    ? "target met: p99 ≤ 10 ms, no missed, no double tick"
    : `target missed: p99 ${ms(percentile(ours, 99))} ms (bare setTimeout p99 ${
      ms(percentile(base, 99))
    } ms in the same run), missed ${missed}, double ${doubled}`,
);
Deno.exit(ok ? 0 : 1);
