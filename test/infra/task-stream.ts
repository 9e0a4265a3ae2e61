/**
 * What the Redis failover tests share: a program on the engine under test with
 * REDIS_WAIT_REPLICAS=1, a stream of `sleep` tasks posted to it across the failover, and the
 * count of accepted tasks that never completed.
 */
import { type Program, readyzStatus, spawnProgram, waitFor } from "../helpers.ts";

/**
 * Starts `http,async-worker` on `redisUrl` with REDIS_WAIT_REPLICAS=1 and waits until ready.
 *
 * @param redisUrl the engine's URL (cluster, sentinel)
 * @param prefix the test's KEY_PREFIX
 * @returns the ready program
 */
export async function spawnWaitingProgram(redisUrl: string, prefix: string): Promise<Program> {
  const p = await spawnProgram({
    ROLE: "http,async-worker",
    REDIS_URL: redisUrl,
    REDIS_WAIT_REPLICAS: "1",
    REDIS_WAIT_TIMEOUT_MS: "500",
    KEY_PREFIX: prefix,
  });
  await waitFor(async () => (await readyzStatus(p.url)) === 200, 20_000, "ready");
  return p;
}

/** Tasks being posted: what was answered so far. */
export interface TaskStream {
  /** The refcodes of the 202s, in order. */
  readonly accepted: string[];
  /** How many answers of each status. */
  readonly statuses: Map<number, number>;
  /** Stops posting; resolves once the last post is answered. */
  stop(): Promise<void>;
}

/**
 * Posts `sleep` `{ms: 20}` tasks until stopped.
 *
 * @param url the program's URL
 * @param options `posters` posting at once (1), `pauseMs` between one poster's posts (20)
 * @returns the stream
 */
export function streamTasks(
  url: string,
  { posters = 1, pauseMs = 20 }: { posters?: number; pauseMs?: number } = {},
): TaskStream {
  const accepted: string[] = [];
  const statuses = new Map<number, number>();
  let streaming = true;
  const post = async () => {
    while (streaming) {
      const r = await fetch(`${url}/tasks/sleep`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ms: 20 }),
      });
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      if (r.status === 202) accepted.push((await r.json()).refcode);
      else await r.body?.cancel();
      await new Promise((res) => setTimeout(res, pauseMs));
    }
  };
  const running = Promise.all(Array.from({ length: posters }, post));
  return {
    accepted,
    statuses,
    async stop() {
      streaming = false;
      await running;
    },
  };
}

/**
 * Waits for each task to finish (up to 20 s each) and counts those not `completed`, logging
 * each.
 *
 * @param url the program's URL
 * @param refcodes the accepted tasks
 * @returns how many did not complete
 */
export async function lostTasks(url: string, refcodes: readonly string[]): Promise<number> {
  let lost = 0;
  for (const refcode of refcodes) {
    const r = await fetch(`${url}/tasks/${refcode}?wait=20`);
    const task = r.status === 200 ? await r.json() : (await r.body?.cancel(), null);
    if (task?.status !== "completed") {
      lost++;
      console.log(`not completed: ${refcode} ${r.status} ${task?.status}`);
    }
  }
  console.log(`lost: ${lost} of ${refcodes.length}`);
  return lost;
}
