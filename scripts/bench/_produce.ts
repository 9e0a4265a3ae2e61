/**
 * @module The produce side of `deno task bench consumers`: on one Kafka (the single broker, then
 * the 3-broker cluster), in the same run,
 *  - `POST /orders` of the example program (Redis write + publish through our sender) at a fixed
 *    concurrency,
 *  - our sender alone (`rt.bus.publish`, one order message per call, same concurrency),
 *  - a bare kafkajs producer (`acks: -1`, one `send()` per message, same concurrency) sending the
 *    same messages,
 * alternating, each on its own fresh topic; the median of each and the per-round ratios.
 */
import kafkajs from "kafkajs";
import { start } from "../../src/main.ts";
import { exampleSystem } from "../../src/example/mod.ts";

/** Options of one produce comparison. */
export interface ProduceBenchOptions {
  brokers: string[];
  redisUrl: string;
  label: string;
  /** Requests (or messages) per contender and round. */
  count: number;
  concurrency: number;
  rounds: number;
  /** Prefix of keys and topics (deleted by the caller's cleanup of `<prefix>:*`). */
  prefix: string;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (n: number) => Math.round(n).toLocaleString("en-US").padStart(9);

async function pool(n: number, concurrency: number, work: (i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) await work(next++);
  }));
}

const order = (i: number) => {
  const id = crypto.randomUUID();
  return {
    key: id,
    value: JSON.stringify({
      id,
      item: `item-${i}`,
      qty: 1,
      processed: false,
      created_at: new Date().toISOString(),
    }),
  };
};

/**
 * Runs the comparison and prints it.
 *
 * @param o brokers, Redis, sizes
 * @returns the median rates (per second) of each contender
 */
export async function produceBench(o: ProduceBenchOptions): Promise<Record<string, number>> {
  const kafka = new kafkajs.Kafka({
    brokers: o.brokers,
    clientId: o.prefix,
    logLevel: kafkajs.logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const topics: string[] = [];
  const running = await start(exampleSystem(), {
    ROLE: "http",
    PORT: "0",
    LOG_LEVEL: Deno.env.get("BENCH_LOG_LEVEL") ?? "error",
    KAFKA_BROKERS: o.brokers.join(","),
    REDIS_URL: o.redisUrl,
    KEY_PREFIX: o.prefix,
    TOPIC_PREFIX: `${o.prefix}.`,
  });
  const url = `http://127.0.0.1:${running.port}/orders`;
  const { rt } = running;
  const fresh = async (name: string) => {
    const topic = `${o.prefix}.${name}`;
    topics.push(topic);
    await rt.bus.ensureTopics([name]); // rt.bus adds TOPIC_PREFIX
    // Until the bare producer's metadata has it too (so no round times a metadata wait).
    for (let attempt = 1;; attempt++) {
      try {
        await producer.send({ topic, acks: -1, messages: [order(-1)] });
        return topic;
      } catch (err) {
        if (attempt >= 40) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  };
  const timed = async (work: () => Promise<void>) => {
    const t0 = performance.now();
    await work();
    return o.count / ((performance.now() - t0) / 1000);
  };
  const contenders: Record<string, (r: number) => Promise<number>> = {
    http: async () => {
      // The route publishes to `<prefix>.orders` (made by the warm-up below).
      let failed = 0;
      const rate = await timed(() =>
        pool(o.count, o.concurrency, async (i) => {
          const res = await fetch(url, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ item: `item-${i}`, qty: 1 }),
          });
          await res.body?.cancel();
          if (res.status !== 201) failed++;
        })
      );
      if (failed) console.log(`    (${failed} POST /orders not 201)`);
      return rate;
    },
    sender: async (r) => {
      const topic = await fresh(`sender-${r}`);
      return await timed(() =>
        pool(
          o.count,
          o.concurrency,
          (i) => rt.bus.publish(topic.slice(o.prefix.length + 1), [order(i)]),
        )
      );
    },
    bare: async (r) => {
      const topic = await fresh(`bare-${r}`);
      return await timed(() =>
        pool(o.count, o.concurrency, async (i) => {
          await producer.send({ topic, acks: -1, messages: [order(i)] });
        })
      );
    },
  };
  const results: Record<string, number[]> = { http: [], sender: [], bare: [] };
  try {
    console.log(`  ${o.label}: warming up`);
    // Warm-up: connections, the orders topic, JIT.
    topics.push(`${o.prefix}.orders`, `${o.prefix}.orders.dlq`);
    await pool(200, o.concurrency, async (i) => {
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ item: `w-${i}`, qty: 1 }),
      });
      await res.body?.cancel();
    });
    console.log(`  ${o.label}: warm-up POSTs done`);
    await fresh("warm");
    console.log(`  ${o.label}: warm-up done`);
    for (let r = 0; r < o.rounds; r++) {
      const order = ["http", "sender", "bare"];
      if (r % 2 === 1) order.reverse();
      for (const name of order) {
        const rate = await contenders[name](r);
        results[name].push(rate);
        console.log(`  ${o.label} round ${r + 1}: ${name.padEnd(7)} ${fmt(rate)} /s`);
      }
    }
  } finally {
    await running.shutdown("bench over");
    await producer.disconnect();
    await admin.deleteTopics({ topics }).catch(() => {});
    await admin.disconnect();
  }
  const ratio = (a: string, b: string) => median(results[a].map((x, i) => x / results[b][i]));
  const m = Object.fromEntries(Object.entries(results).map(([k, xs]) => [k, median(xs)]));
  console.log(
    `\nproduce on ${o.label} (${o.brokers.join(",")}), ${o.count} per round, ` +
      `${o.concurrency} in flight, ${o.rounds} rounds (median)`,
  );
  console.log("contender                                          |      per s");
  console.log(`POST /orders (Redis write + our sender, acks=all)  | ${fmt(m.http)}`);
  console.log(`our sender alone (bus.publish, 1 message per call) | ${fmt(m.sender)}`);
  console.log(`bare kafkajs producer.send (acks=-1, 1 per call)   | ${fmt(m.bare)}`);
  console.log(
    `ratio POST /orders / bare producer                 | ${
      ratio("http", "bare").toFixed(2).padStart(9)
    }`,
  );
  console.log(
    `ratio our sender / bare producer                   | ${
      ratio("sender", "bare").toFixed(2).padStart(9)
    }`,
  );
  return m;
}
