/**
 * @module What the benchmarks share: arguments, wrk, a private Redis, server processes, figures.
 */
import {
  freePort,
  killOnCleanup,
  onCleanup,
  redisServer,
  ROOT,
  waitFor,
} from "../../test/helpers.ts";

/**
 * Reads `--name value` from the command line.
 *
 * @param name the option without dashes
 * @param fallback its default
 * @returns the value
 */
export function arg(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : fallback;
}

/**
 * The element at fraction `p` of a sorted array.
 *
 * @param sorted ascending
 * @param p 0..1
 * @returns the value, or NaN when empty
 */
export const percentile = (sorted: number[], p: number): number =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : NaN;

/**
 * The median.
 *
 * @param xs values
 * @returns the middle one (upper middle for an even count)
 */
export const median = (xs: number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Installs wrk from Debian's packages when it is missing. */
export async function ensureWrk(): Promise<void> {
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

/** What one wrk run reports. */
export interface WrkResult {
  rps: number;
  requests: number;
  /** ms */
  p50: number;
  /** ms */
  p99: number;
  non2xx: number;
}

const WRK_DONE = `done = function(summary, latency, requests)
  io.write(string.format("JSON {\\"p50\\":%d,\\"p99\\":%d,\\"rps\\":%f,\\"requests\\":%d,\\"non2xx\\":%d}\\n",
    latency:percentile(50), latency:percentile(99), summary.requests / (summary.duration / 1e6),
    summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end`;

/**
 * A wrk script for one request shape.
 *
 * @param method GET or POST
 * @param body JSON body of a POST
 * @returns the Lua source
 */
export function wrkScript(method: "GET" | "POST", body?: string): string {
  if (method === "GET") return WRK_DONE;
  return `wrk.method = "POST"
wrk.body = '${body}'
wrk.headers["Content-Type"] = "application/json"
${WRK_DONE}`;
}

/**
 * Runs wrk (2 threads) against one URL.
 *
 * @param url the URL
 * @param lua the script (see {@link wrkScript})
 * @param seconds duration
 * @param connections open connections
 * @param cpus CPUs to run it on (`taskset -c`; see {@link pinning}), default any
 * @returns its summary
 */
export async function wrk(
  url: string,
  lua: string,
  seconds: number,
  connections: number,
  cpus?: string,
): Promise<WrkResult> {
  const file = await Deno.makeTempFile({ suffix: ".lua" });
  await Deno.writeTextFile(file, lua);
  const out = await _command(
    "wrk",
    [
      ...["-t", "2", "-c", String(connections), "-d", `${seconds}s`, "--latency", "-s", file, url],
    ],
    cpus,
    {
      stdout: "piped",
      stderr: "piped",
    },
  ).output();
  await Deno.remove(file);
  const text = new TextDecoder().decode(out.stdout);
  const line = text.split("\n").find((l) => l.startsWith("JSON "));
  if (!line) {
    throw new Error(`wrk printed no summary:\n${text}${new TextDecoder().decode(out.stderr)}`);
  }
  const r = JSON.parse(line.slice(5));
  return {
    rps: r.rps,
    requests: r.requests,
    p50: r.p50 / 1000,
    p99: r.p99 / 1000,
    non2xx: r.non2xx,
  };
}

/** A command, under `taskset -c cpus` when CPUs are given. */
function _command(
  program: string,
  args: string[],
  cpus: string | undefined,
  options: Deno.CommandOptions,
): Deno.Command {
  return cpus
    ? new Deno.Command("taskset", { ...options, args: ["-c", cpus, program, ...args] })
    : new Deno.Command(program, { ...options, args });
}

/**
 * Where a server under load and its load generator run: apart, on CPUs of their own, when the
 * machine has at least two and `taskset` is there, so that no run has the two on one core (the
 * engines the server calls stay unpinned). It does not remove this machine's swing between
 * rounds, which moves every contender alike.
 *
 * @returns `taskset -c` lists for the server and the load generator, or undefined
 */
export function pinning(): { server: string; load: string } | undefined {
  const n = navigator.hardwareConcurrency;
  if (n < 2) return undefined;
  try {
    if (!new Deno.Command("taskset", { args: ["-c", "0", "true"] }).outputSync().success) return;
  } catch {
    return undefined;
  }
  return { server: String(n - 1), load: n === 2 ? "0" : `0-${n - 2}` };
}

/**
 * Starts a Redis of the benchmark's own on a free port (no persistence), so that INFO
 * commandstats counts only the contenders' commands and no other load on the shared server
 * skews the figures. Stopped at `cleanup()`.
 *
 * @returns its URL
 */
export async function privateRedis(): Promise<string> {
  const port = freePort();
  await redisServer(port);
  return `redis://127.0.0.1:${port}`;
}

/**
 * Starts a private 3-master Redis Cluster (no replicas, like the private single server) on free
 * ports, stopped at `cleanup()`.
 *
 * @returns the URL of its first node (the store finds the others)
 */
export async function privateCluster(): Promise<string> {
  const ports = [freePort(), freePort(), freePort()];
  const dir = await Deno.makeTempDir({ prefix: "bench-cluster-" });
  for (const port of ports) {
    await redisServer(
      port,
      ["--cluster-enabled", "yes", "--cluster-config-file", `${dir}/nodes-${port}.conf`],
      dir,
    );
  }
  const created = await new Deno.Command("redis-cli", {
    args: [
      "--cluster",
      "create",
      ...ports.map((p) => `127.0.0.1:${p}`),
      "--cluster-replicas",
      "0",
      "--cluster-yes",
    ],
    stdout: "null",
    stderr: "inherit",
  }).output();
  if (created.code !== 0) throw new Error("redis-cli --cluster create failed");
  await waitFor(
    async () => {
      for (const port of ports) {
        const out = await new Deno.Command("redis-cli", {
          args: ["-p", String(port), "cluster", "info"],
          stdout: "piped",
        }).output();
        if (!new TextDecoder().decode(out.stdout).includes("cluster_state:ok")) return false;
      }
      return true;
    },
    20_000,
    "cluster_state:ok",
  );
  onCleanup(() => Deno.remove(dir, { recursive: true }).catch(() => {}));
  return `redis://127.0.0.1:${ports[0]}`;
}

/** A server process of a benchmark. */
export interface Server {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/**
 * CPU time (user + system) a process has used so far, from /proc (Linux).
 *
 * @param pid the process
 * @returns milliseconds
 */
export function cpuMs(pid: number): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  // utime and stime are fields 14 and 15 of the whole line, in clock ticks (100 per second).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * Starts a server process on a free port with its output to /dev/null: logs stay on (they are
 * part of the stack), but reading them is a log collector's work, not the server's, and must not
 * take this machine's two cores from the servers. Ready once `/healthz` answers.
 *
 * @param cmd the program and its arguments (`deno` for Deno.execPath())
 * @param env environment; PORT is added
 * @param options `cwd`: working directory (default: the repository); `cpus`: CPUs to run it on
 *   (`taskset -c`; see {@link pinning}), default any
 * @returns the server
 */
export async function serve(
  cmd: string[],
  env: Record<string, string>,
  options: { cwd?: string; cpus?: string } = {},
): Promise<Server> {
  const port = freePort();
  const program = cmd[0] === "deno" ? Deno.execPath() : cmd[0];
  const child = killOnCleanup(
    _command(program, cmd.slice(1), options.cpus, {
      cwd: options.cwd ?? ROOT,
      env: { ...env, PORT: String(port) },
      stdin: "null",
      stdout: "null",
      stderr: Deno.env.get("BENCH_SHOW_ERRORS") ? "inherit" : "null",
    }).spawn(),
  );
  let exited = false;
  child.status.then(() => (exited = true));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (exited) throw new Error(`${cmd.join(" ")} exited`);
      const r = await fetch(`${url}/healthz`);
      await r.body?.cancel();
      return r.status === 200 || r.status === 404; // the bare app has no /healthz
    },
    60_000,
    cmd.join(" "),
  );
  return {
    url,
    pid: child.pid,
    stop: async () => {
      if (!exited) child.kill("SIGTERM");
      await child.status;
    },
  };
}

/**
 * Deletes keys matching a pattern with SCAN and UNLINK.
 *
 * @param command sends one command
 * @param pattern e.g. `bench-1234:*`
 */
export async function deleteMatching(
  command: (args: (string | number)[]) => Promise<unknown>,
  pattern: string,
): Promise<void> {
  let cursor = "0";
  do {
    const [next, found] = await command(["SCAN", cursor, "MATCH", pattern, "COUNT", 1000]) as [
      string,
      string[],
    ];
    cursor = String(next);
    if (found.length) await command(["UNLINK", ...found]);
  } while (cursor !== "0");
}

/**
 * Calls per command from `INFO commandstats`.
 *
 * @param info the reply
 * @returns command → calls
 */
export function commandCalls(info: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out.set(m[1], Number(m[2]));
  return out;
}

/**
 * One line of the summary table that `deno task bench all` prints.
 *
 * @param row the figures
 */
export function summaryRow(row: SummaryRow): void {
  console.log(`SUMMARY ${JSON.stringify(row)}`);
}

/** A row of the summary table. */
export interface SummaryRow {
  bench: string;
  /** What is measured, e.g. "shipped worker, HTTP enqueue: tasks/s end to end". */
  what: string;
  ours: number;
  /** The baseline's figure in the same run, when there is one. */
  baseline?: number;
  baselineName?: string;
  /** `higher` when more is better (throughput), `lower` for latencies and costs. */
  better: "higher" | "lower";
  /** The target: on ours/baseline (`targetOn: "ratio"`, the default) or on ours itself. */
  target?: number;
  targetOn?: "ratio" | "ours";
  unit: string;
}

/**
 * Whether a row meets its target.
 *
 * @param row the row
 * @returns true, false, or undefined when it has no target
 */
export function met(row: SummaryRow): boolean | undefined {
  if (row.target === undefined) return undefined;
  const value = row.targetOn === "ours" ? row.ours : row.ours / (row.baseline ?? NaN);
  return row.better === "higher" ? value >= row.target : value <= row.target;
}

export { onCleanup };
