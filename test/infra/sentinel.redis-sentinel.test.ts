/**
 * Sentinel (`scripts/redis-sentinel.sh`: primary/replica on 6380/6381, sentinels 26380-26382,
 * master "svc"): the primary is followed across a kill -9 failover with REDIS_WAIT_REPLICAS=1,
 * every 202 completes, and the old primary restarted empty is demoted and never written.
 * A process pointed at a replica is not ready.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { cleanup, ROOT, spawnProgram, unique, waitFor } from "../helpers.ts";
import { lostTasks, spawnWaitingProgram, streamTasks } from "./task-stream.ts";

test.after(cleanup);

const SENTINEL_URL = Deno.env.get("TEST_REDIS_SENTINEL_URL") ??
  "redis+sentinel://127.0.0.1:26380,127.0.0.1:26381,127.0.0.1:26382/svc";
const DATA_PORTS = [6380, 6381];

async function cli(port: number, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("redis-cli", {
    args: ["-p", String(port), ...args],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).trim();
}

/** The data port the sentinels name primary now. */
async function namedPrimary(): Promise<number> {
  const reply = await cli(26380, "sentinel", "get-master-addr-by-name", "svc");
  return Number(reply.split("\n")[1]);
}

async function ensureHarness(): Promise<void> {
  const out = await new Deno.Command("bash", { args: [`${ROOT}scripts/redis-sentinel.sh`] })
    .output();
  assert.is(out.code, 0, new TextDecoder().decode(out.stderr));
}

test.before(ensureHarness);

test("pointed at a replica: /readyz 503 naming redis, writes 503 (READONLY), never 500", async () => {
  const primary = await namedPrimary();
  const replica = DATA_PORTS.find((p) => p !== primary)!;
  const p = await spawnProgram({
    ROLE: "http",
    REDIS_URL: `redis://127.0.0.1:${replica}`,
    KEY_PREFIX: unique("t"),
    API_KEYS: "k",
  });
  const auth = { authorization: "Bearer k" };
  const body = await waitFor(
    async () => {
      const r = await fetch(`${p.url}/readyz`, { headers: auth });
      const b = await r.json();
      // First "not connected", then, connected, the role.
      return r.status === 503 && /replica/.test(b.checks?.redis?.detail) ? b : undefined;
    },
    15_000,
    "readyz 503 on a replica, saying so",
  );
  assert.match(body.checks.redis.detail, /replica/, JSON.stringify(body));
  const write = await fetch(`${p.url}/tasks/sleep`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify({ ms: 1 }),
  });
  assert.is(write.status, 503, await write.text());
  assert.is(write.headers.get("retry-after"), "1");
  assert.is((await p.stop()).code, 0);
});

test("kill -9 the primary mid-stream with REDIS_WAIT_REPLICAS=1: only 202/503, every 202 completes; the old primary restarted empty is demoted and never written", async () => {
  const prefix = unique("ts");
  const p = await spawnWaitingProgram(SENTINEL_URL, prefix);
  const stream = streamTasks(p.url);
  const { accepted, statuses } = stream;
  await waitFor(() => accepted.length >= 20, 20_000, "20 tasks accepted before the kill");

  const old = await namedPrimary();
  const pid = Number(/process_id:(\d+)/.exec(await cli(old, "info", "server"))![1]);
  const acceptedBeforeKill = accepted.length;
  Deno.kill(pid, "SIGKILL");
  const promoted = await waitFor(
    async () => {
      const now = await namedPrimary();
      return now !== old ? now : 0;
    },
    30_000,
    "the sentinels to promote the replica",
  );

  // The old primary comes back empty, as a primary (its own config says so): the sentinels
  // must demote it, and until then no write of ours may reach it.
  const monitor = new Deno.Command("bash", {
    args: [
      "-c",
      `redis-server --port ${old} --bind 127.0.0.1 --save '' --appendonly no --daemonize yes ` +
      `--dir "\${TMPDIR:-/tmp}/svc-redis-sentinel" --logfile "\${TMPDIR:-/tmp}/svc-redis-sentinel/redis-${old}.log" >/dev/null && ` +
      `until redis-cli -p ${old} ping >/dev/null 2>&1; do sleep 0.05; done; exec redis-cli -p ${old} monitor`,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines: string[] = [];
  const reading = (async () => {
    for await (const chunk of monitor.stdout.pipeThrough(new TextDecoderStream())) {
      lines.push(...chunk.split("\n"));
    }
  })();
  const demotedAt = await waitFor(
    async () => {
      const role = await cli(old, "role");
      return role.startsWith("slave") ? Date.now() / 1000 : 0;
    },
    30_000,
    "the old primary to be demoted",
  );
  await waitFor(
    async () => (await cli(old, "info", "replication")).includes("master_link_status:up"),
    30_000,
    "the old primary to sync from the new one",
  );
  // A little more of the stream on the new primary, now with a replica again.
  const afterHeal = accepted.length;
  await waitFor(() => accepted.length >= afterHeal + 10, 20_000, "10 more tasks accepted");
  await stream.stop();
  // The sentinels end every client of a node they reconfigure, MONITOR included.
  try {
    monitor.kill("SIGTERM");
  } catch { /* already ended */ }
  await monitor.status;
  await reading.catch(() => {});

  const written = lines.filter((l) => {
    const at = Number(l.split(" ")[0]);
    return at > 0 && at < demotedAt && l.includes(prefix);
  });
  assert.equal(
    written,
    [],
    `writes reached the old primary before it was demoted:\n${written.slice(0, 5).join("\n")}`,
  );
  const counts = Object.fromEntries(statuses);
  console.log(
    `sentinel failover ${old} → ${promoted}: statuses ${JSON.stringify(counts)}, ` +
      `${acceptedBeforeKill} accepted before the kill, ${accepted.length} in all`,
  );
  assert.equal([...statuses.keys()].filter((s) => s !== 202 && s !== 503), []);

  assert.is(await lostTasks(p.url, accepted), 0);
  assert.is((await p.stop()).code, 0);
  await ensureHarness();
});

test.run();
