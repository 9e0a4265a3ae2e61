/**
 * Redis Cluster failover (`scripts/redis-cluster.sh`, node timeout 2 s): kill -9 the master that
 * holds most of the stream's keys while tasks are posted; with REDIS_WAIT_REPLICAS=1 only 202
 * and 503 are answered, and every 202 completes.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { createClient } from "redis";
import { cleanup, ROOT, unique, waitFor } from "../helpers.ts";
import { lostTasks, spawnWaitingProgram, streamTasks } from "./task-stream.ts";

test.after(cleanup);

const CLUSTER_URL = Deno.env.get("TEST_REDIS_CLUSTER_URL") ?? "redis://127.0.0.1:7000";
const FIRST_PORT = Number(new URL(CLUSTER_URL).port);

async function ensureCluster(): Promise<void> {
  const out = await new Deno.Command("bash", { args: [`${ROOT}scripts/redis-cluster.sh`] })
    .output();
  assert.is(out.code, 0, new TextDecoder().decode(out.stderr));
}

/** Each master's port, pid and number of keys under `prefix`. */
async function masters(
  prefix: string,
  remove = false,
): Promise<{ port: number; pid: number; keys: number }[]> {
  const out = [];
  for (let port = FIRST_PORT; port < FIRST_PORT + 6; port++) {
    const c = createClient({ socket: { host: "127.0.0.1", port, reconnectStrategy: false } });
    c.on("error", () => {});
    try {
      await c.connect();
      const role = await c.sendCommand(["ROLE"]) as string[];
      if (role[0] !== "master") continue;
      const info = String(await c.sendCommand(["INFO", "server"]));
      let keys = 0, cursor = "0";
      do {
        const [next, page] = await c.sendCommand(
          ["SCAN", cursor, "MATCH", `${prefix}:*`, "COUNT", "1000"],
        ) as [string, string[]];
        keys += page.length;
        cursor = next;
        // Each key is this master's own: UNLINK them one by one (slots differ).
        if (remove) { for (const k of page) await c.sendCommand(["UNLINK", k]); }
      } while (cursor !== "0");
      out.push({ port, pid: Number(/process_id:(\d+)/.exec(info)![1]), keys });
    } catch {
      /* down */
    } finally {
      c.destroy();
    }
  }
  return out;
}

test.before(ensureCluster);

test("kill -9 a master mid-stream: only 202/503, every 202 completes", async () => {
  const prefix = unique("tf");
  const p = await spawnWaitingProgram(CLUSTER_URL, prefix);
  const stream = streamTasks(p.url, { posters: 2, pauseMs: 10 });
  const { accepted, statuses } = stream;
  await waitFor(() => accepted.length >= 30, 20_000, "30 tasks accepted before the kill");

  const before = await masters(prefix);
  const victim = before.reduce((a, b) => (b.keys > a.keys ? b : a));
  const acceptedBeforeKill = accepted.length;
  Deno.kill(victim.pid, "SIGKILL");
  // Its replica takes over (node timeout 2 s); then the killed node comes back as a replica.
  await waitFor(async () => (await masters(prefix)).length === 3, 30_000, "a replica promoted");
  await ensureCluster();
  const healed = accepted.length;
  await waitFor(() => accepted.length >= healed + 20, 30_000, "20 more tasks accepted");
  await stream.stop();

  const counts = Object.fromEntries(statuses);
  console.log(
    `cluster failover of ${victim.port} (${victim.keys} of the stream's keys; keys per master ` +
      `${before.map((m) => `${m.port}:${m.keys}`).join(" ")}): statuses ${
        JSON.stringify(counts)
      }, ` +
      `${acceptedBeforeKill} accepted before the kill, ${accepted.length} in all`,
  );
  assert.equal([...statuses.keys()].filter((s) => s !== 202 && s !== 503), []);
  assert.is(await lostTasks(p.url, accepted), 0);
  assert.is((await p.stop()).code, 0);
  await masters(prefix, true);
});

test.run();
