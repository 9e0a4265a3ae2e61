/**
 * @module HTTP benchmark: our full stack (`ROLE=http`) vs a bare Hono app with the same routes
 * and adapters, side by side with wrk at a fixed concurrency. Prints requests/s, p50/p99 and
 * the ratios. Uses real Redis and Kafka when reachable (scripts/redis.sh, scripts/kafka.sh),
 * else embedded mode for both.
 *
 * Usage: `deno task bench http [--seconds 10] [--connections 32] [--embedded]`
 */
import {
  cleanup,
  deleteKeys,
  deleteTopicsLater,
  freePort,
  killOnCleanup,
  onCleanup,
  ROOT,
  testRuntime,
  unique,
  waitFor,
} from "../../test/helpers.ts";

const arg = (name: string, fallback: string) => {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : fallback;
};
const SECONDS = Number(arg("seconds", "10"));
const CONNECTIONS = Number(arg("connections", "32"));
const ROUNDS = Number(arg("rounds", "3"));
const embedded = Deno.args.includes("--embedded");

async function ensureWrk(): Promise<void> {
  const has = await new Deno.Command("sh", { args: ["-c", "command -v wrk"], stdout: "null" })
    .output();
  if (has.code === 0) return;
  console.log("installing wrk from Debian's packages…");
  const out = await new Deno.Command("sh", {
    args: ["-c", "apt-get install -y wrk || (apt-get update && apt-get install -y wrk)"],
    stdout: "null",
    stderr: "inherit",
  }).output();
  if (out.code !== 0) throw new Error("wrk could not be installed");
}

async function ensureBrokers(): Promise<Record<string, string>> {
  if (embedded) return {};
  const root = new URL("../../", import.meta.url).pathname;
  for (const s of ["redis.sh", "kafka.sh"]) {
    const out = await new Deno.Command("bash", {
      args: [`${root}scripts/${s}`],
      stdout: "null",
      stderr: "inherit",
    }).output();
    if (out.code !== 0) throw new Error(`${s} failed`);
  }
  return { REDIS_URL: "redis://127.0.0.1:6379", KAFKA_BROKERS: "127.0.0.1:9092" };
}

interface Result {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
}

const LUA_POST = `wrk.method = "POST"
wrk.body = '{"item":"bench","qty":2}'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format("JSON {\\"p50\\":%d,\\"p99\\":%d,\\"rps\\":%f,\\"non2xx\\":%d}\\n",
    latency:percentile(50), latency:percentile(99), summary.requests / (summary.duration / 1e6),
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end`;
const LUA_GET = LUA_POST.split("\n").slice(3).join("\n");

async function wrk(url: string, lua: string): Promise<Result> {
  const file = await Deno.makeTempFile({ suffix: ".lua" });
  await Deno.writeTextFile(file, lua);
  const out = await new Deno.Command("wrk", {
    args: ["-t", "2", "-c", String(CONNECTIONS), "-d", `${SECONDS}s`, "--latency", "-s", file, url],
    stdout: "piped",
    stderr: "piped",
  }).output();
  await Deno.remove(file);
  const text = new TextDecoder().decode(out.stdout);
  const line = text.split("\n").find((l) => l.startsWith("JSON "));
  if (!line) {
    throw new Error(`wrk printed no summary:\n${text}${new TextDecoder().decode(out.stderr)}`);
  }
  const r = JSON.parse(line.slice(5));
  return { rps: r.rps, p50: r.p50 / 1000, p99: r.p99 / 1000, non2xx: r.non2xx };
}

await ensureWrk();
const env = await ensureBrokers();
const prefix = unique("bench");
const common = { ...env, KEY_PREFIX: prefix, TOPIC_PREFIX: `${prefix}.`, LOG_LEVEL: "info" };
if (env.REDIS_URL) {
  // Each POST stores an order: hundreds of thousands per run, removed at the end.
  const admin = testRuntime({ redis: true });
  onCleanup(() => deleteKeys(admin, `${prefix}:*`));
  deleteTopicsLater([`${prefix}.orders`]);
}
/**
 * Starts a server on a free port with its output to /dev/null: the access log stays on (it is
 * part of the stack) but reading it is a log collector's work, not the server's, and must not
 * take this machine's two cores from the servers.
 */
async function serve(env: Record<string, string>, entry: string) {
  const port = freePort();
  const child = killOnCleanup(
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", entry],
      cwd: ROOT,
      env: { ...env, PORT: String(port) },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn(),
  );
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => (await fetch(`${url}/healthz`).then((r) =>
      r.body?.cancel().then(() => r.status === 200 || r.status === 404)
    )),
    30_000,
    entry,
  );
  return {
    url,
    stop: async () => {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

const ours = await serve({ ...common, ROLE: "http" }, "src/example/main.ts");
const bare = await serve(common, "scripts/bench/_bare-http.ts");

const post = async (base: string) => {
  const r = await fetch(`${base}/orders`, {
    method: "POST",
    body: '{"item":"seed","qty":1}',
    headers: { "content-type": "application/json" },
  });
  return (await r.json()).id as string;
};
const ids = { ours: await post(ours.url), bare: await post(bare.url) };
await waitFor(async () => (await fetch(`${ours.url}/orders/${ids.ours}`)).status === 200, 5000);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows: [string, Result[], Result[]][] = [];
for (
  const [name, lua, path] of [
    ["GET /orders/{id}", LUA_GET, (id: string) => `/orders/${id}`],
    ["POST /orders", LUA_POST, () => "/orders"],
  ] as const
) {
  const o: Result[] = [], b: Result[] = [];
  const run = {
    ours: () => wrk(`${ours.url}${path(ids.ours)}`, lua),
    bare: () => wrk(`${bare.url}${path(ids.bare)}`, lua),
  };
  await run.bare(); // warm both up
  await run.ours();
  // Rounds alternate who goes first, so neither always gets the quieter moment of a shared machine.
  for (let round = 0; round < ROUNDS; round++) {
    if (round % 2 === 0) {
      b.push(await run.bare());
      o.push(await run.ours());
    } else {
      o.push(await run.ours());
      b.push(await run.bare());
    }
  }
  rows.push([name, o, b]);
}

console.log(
  `\nHTTP benchmark: ${CONNECTIONS} connections, ${SECONDS}s per run, ${ROUNDS} rounds (medians), ${
    env.REDIS_URL ? "real Redis + Kafka" : "embedded"
  }`,
);
console.log(
  "route               | ours req/s | bare req/s | ratio | ratio per round | ours p50/p99 ms | bare p50/p99 ms",
);
for (const [name, o, b] of rows) {
  const ratios = o.map((r, i) => r.rps / b[i].rps);
  const m = (rs: Result[], f: (r: Result) => number) => median(rs.map(f));
  const errors = o.reduce((n, r) => n + r.non2xx, 0) + b.reduce((n, r) => n + r.non2xx, 0);
  console.log(
    `${name.padEnd(19)} | ${m(o, (r) => r.rps).toFixed(0).padStart(10)} | ${
      m(b, (r) => r.rps).toFixed(0).padStart(10)
    } | ${median(ratios).toFixed(2).padStart(5)} | ${ratios.map((r) => r.toFixed(2)).join(" ")} | ${
      m(o, (r) => r.p50).toFixed(2)
    }/${m(o, (r) => r.p99).toFixed(2)} | ${m(b, (r) => r.p50).toFixed(2)}/${
      m(b, (r) => r.p99).toFixed(2)
    }${errors ? `  (errors: ${errors})` : ""}`,
  );
}
await ours.stop();
await bare.stop();
await cleanup();
Deno.exit(0);
