/**
 * @module HTTP benchmark: our full stack (`ROLE=http` of the example system) beside what a team
 * would run instead, with the same routes and the same Redis and Kafka client libraries, in the
 * same run: a bare Hono app on Deno.serve with our adapters and nothing else
 * (`_bare-http.ts`), Fastify 5 with its pino logger and fastify-metrics, and Express 5 with
 * morgan and express-prom-bundle (both on Node, `node/fastify.mjs`, `node/express.mjs`, installed
 * into `.cache/bench-node` with `npm ci`). wrk at a fixed concurrency, each server in its own
 * process with its output to /dev/null; rounds alternate the order; medians. Besides requests/s
 * it reports each server's CPU time per request (from /proc), which a busy shared machine skews
 * far less than throughput. Uses real Redis and Kafka when reachable (scripts/redis.sh,
 * scripts/kafka.sh), else embedded mode (the Node peers then skip Kafka).
 *
 * Usage: `deno task bench http [--seconds 5] [--connections 32] [--rounds 3] [--embedded]
 *   [--routes get,post] [--peers bare,fastify,express]`
 */
import {
  cleanup,
  deleteKeys,
  deleteTopicsLater,
  onCleanup,
  ROOT,
  testRuntime,
  unique,
} from "../../test/helpers.ts";
import {
  arg,
  cpuMs,
  ensureWrk,
  median,
  pinning,
  serve,
  type Server,
  summaryRow,
  wrk,
  type WrkResult,
  wrkScript,
} from "./_lib.ts";

const SECONDS = Number(arg("seconds", "5"));
const CONNECTIONS = Number(arg("connections", "32"));
const ROUNDS = Number(arg("rounds", "3"));
const ROUTES = arg("routes", "get,post").split(",");
const PEERS = arg("peers", "bare,fastify,express").split(",");
const embedded = Deno.args.includes("--embedded");

/** What each peer is compared on: the target ratio ours/peer per route. */
const TARGETS: Record<string, Record<string, number | undefined>> = {
  bare: { get: 0.85, post: 0.85 },
  fastify: { get: 1.5, post: 1.5 },
  express: { get: 3, post: 3 },
};
const NAMES: Record<string, string> = {
  ours: "ours",
  bare: "bare Hono",
  fastify: "Fastify+pino",
  express: "Express+morgan",
};

async function ensureBrokers(): Promise<Record<string, string>> {
  if (embedded) return {};
  for (const s of ["redis.sh", "kafka.sh"]) {
    const out = await new Deno.Command("bash", {
      args: [`${ROOT}scripts/${s}`],
      stdout: "null",
      stderr: "inherit",
    }).output();
    if (out.code !== 0) throw new Error(`${s} failed`);
  }
  return { REDIS_URL: "redis://127.0.0.1:6379", KAFKA_BROKERS: "127.0.0.1:9092" };
}

/** Installs the Node peers (npm ci) into .cache/bench-node unless the lock file is unchanged. */
async function ensureNodePeers(): Promise<string> {
  const src = `${ROOT}scripts/bench/node/`;
  const dir = `${ROOT}.cache/bench-node/`;
  await Deno.mkdir(dir, { recursive: true });
  for (const f of Deno.readDirSync(src)) {
    if (f.isFile) await Deno.copyFile(`${src}${f.name}`, `${dir}${f.name}`);
  }
  const lock = await Deno.readTextFile(`${dir}package-lock.json`);
  const stamp = await Deno.readTextFile(`${dir}node_modules/.stamp`).catch(() => "");
  if (stamp !== lock) {
    console.log("installing the Node peers (npm ci in .cache/bench-node)…");
    const out = await new Deno.Command("npm", {
      args: ["ci", "--no-audit", "--no-fund", "--loglevel=error"],
      cwd: dir,
      stdout: "null",
      stderr: "inherit",
    }).output();
    if (out.code !== 0) throw new Error("npm ci of the Node peers failed");
    await Deno.writeTextFile(`${dir}node_modules/.stamp`, lock);
  }
  return dir;
}

interface Result extends WrkResult {
  /** Server CPU time per request, µs. */
  cpuUs: number;
}

await ensureWrk();
const env = await ensureBrokers();
const nodeDir = PEERS.some((p) => p === "fastify" || p === "express")
  ? await ensureNodePeers()
  : "";
const prefix = unique("bench");
const common = { ...env, KEY_PREFIX: prefix, TOPIC_PREFIX: `${prefix}.`, LOG_LEVEL: "info" };
if (env.REDIS_URL) {
  // Each POST stores an order: hundreds of thousands per run, removed at the end.
  const admin = testRuntime({ redis: true });
  onCleanup(() => deleteKeys(admin, `${prefix}:*`));
  deleteTopicsLater([`${prefix}.orders`]);
}

// Every server on the same CPU, wrk on the others (see pinning()).
const pin = pinning();
const cpus = pin?.server;
const servers: Record<string, Server> = {
  ours: await serve(["deno", "run", "-A", "src/example/main.ts"], { ...common, ROLE: "http" }, {
    cpus,
  }),
};
for (const peer of PEERS) {
  servers[peer] = peer === "bare"
    ? await serve(["deno", "run", "-A", "scripts/bench/_bare-http.ts"], common, { cpus })
    : await serve(["node", `${peer}.mjs`], { ...common, NODE_ENV: "production" }, {
      cwd: nodeDir,
      cpus,
    });
}

const post = async (base: string) => {
  const r = await fetch(`${base}/orders`, {
    method: "POST",
    body: '{"item":"seed","qty":1}',
    headers: { "content-type": "application/json" },
  });
  if (r.status !== 201) throw new Error(`${base}: POST /orders answered ${r.status}`);
  return (await r.json()).id as string;
};
const ids: Record<string, string> = {};
for (const [name, s] of Object.entries(servers)) ids[name] = await post(s.url);

async function run(name: string, route: string): Promise<Result> {
  const s = servers[name];
  const url = route === "get" ? `${s.url}/orders/${ids[name]}` : `${s.url}/orders`;
  const lua = route === "get" ? wrkScript("GET") : wrkScript("POST", '{"item":"bench","qty":2}');
  const before = cpuMs(s.pid);
  const r = await wrk(url, lua, SECONDS, CONNECTIONS, pin?.load);
  return { ...r, cpuUs: ((cpuMs(s.pid) - before) * 1000) / Math.max(1, r.requests) };
}

const names = ["ours", ...PEERS];
const results: Record<string, Record<string, Result[]>> = {};
for (const route of ROUTES) {
  results[route] = Object.fromEntries(names.map((n) => [n, []]));
  for (const n of names) await run(n, route); // warm-up
  // Rounds rotate who goes first, so no server always gets the quieter moment of a shared machine.
  for (let round = 0; round < ROUNDS; round++) {
    const order = names.map((_, i) => names[(i + round) % names.length]);
    for (const n of order) results[route][n].push(await run(n, route));
  }
}

const label = (route: string) => route === "get" ? "GET /orders/{id}" : "POST /orders";
console.log(
  `\nHTTP benchmark: ${CONNECTIONS} connections, ${SECONDS}s per run, ${ROUNDS} rounds (medians), ${
    env.REDIS_URL ? "real Redis + Kafka" : "embedded"
  }; ${
    pin ? `servers on CPU ${pin.server}, wrk on CPU ${pin.load}` : "unpinned"
  }; CPU µs/request is the server process's own CPU time per answered request`,
);
console.log(
  "route            | server          |  req/s | p50/p99 ms  | CPU µs/req | ours/it req/s (per round) | by CPU",
);
for (const route of ROUTES) {
  const m = (n: string, f: (r: Result) => number) => median(results[route][n].map(f));
  for (const n of names) {
    const ratios = results[route].ours.map((o, i) => o.rps / results[route][n][i].rps);
    const errors = results[route][n].reduce((k, r) => k + r.non2xx, 0);
    console.log(
      `${label(route).padEnd(16)} | ${NAMES[n].padEnd(15)} | ${
        m(n, (r) => r.rps).toFixed(0).padStart(6)
      } | ${m(n, (r) => r.p50).toFixed(2)}/${m(n, (r) => r.p99).toFixed(2)} | ${
        m(n, (r) => r.cpuUs).toFixed(1).padStart(10)
      } | ${
        n === "ours"
          ? "".padEnd(25)
          : `${median(ratios).toFixed(2)}× (${ratios.map((r) => r.toFixed(2)).join(" ")})`.padEnd(
            25,
          )
      } | ${
        n === "ours" ? "" : `${(m(n, (r) => r.cpuUs) / m("ours", (r) => r.cpuUs)).toFixed(2)}×`
      }${errors ? `  (errors: ${errors})` : ""}`,
    );
    if (n === "ours") continue;
    summaryRow({
      bench: "http",
      what: `${label(route)}: req/s vs ${NAMES[n]}`,
      ours: m("ours", (r) => r.rps),
      baseline: m(n, (r) => r.rps),
      baselineName: NAMES[n],
      better: "higher",
      target: TARGETS[n]?.[route],
      unit: "req/s",
    });
  }
}
for (const s of Object.values(servers)) await s.stop();
await cleanup();
Deno.exit(0);
