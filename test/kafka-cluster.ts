/**
 * @module Helpers of the fault tests on the 3-node KRaft cluster of `scripts/kafka-cluster.sh`:
 * its nodes and their pids, killing and restarting one, and reading a topic back.
 */
import kafkajs from "kafkajs";
import { KAFKA_CLUSTER_BROKERS, ROOT } from "./helpers.ts";

/** A running node of the cluster. */
export interface ClusterNode {
  id: number;
  pid: number;
  port: number;
}

/** @returns the nodes running now (from the script's pid files) */
export async function clusterNodes(): Promise<ClusterNode[]> {
  const out = await new Deno.Command("bash", {
    args: [`${ROOT}scripts/kafka-cluster.sh`, "pids"],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).trim().split("\n").filter((l) => l).map((l) => {
    const [id, pid, port] = l.split(" ").map(Number);
    return { id, pid, port };
  });
}

/**
 * Starts the nodes that are down (on their own data) and waits until all three serve.
 *
 * @returns the script's exit code and output
 */
export async function restartCluster(): Promise<{ code: number; output: string }> {
  const out = await new Deno.Command("bash", {
    args: [`${ROOT}scripts/kafka-cluster.sh`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, output: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

/** A kafkajs client on the cluster, for the test's own looks at it. */
export function clusterClient(): kafkajs.Kafka {
  return new kafkajs.Kafka({
    brokers: KAFKA_CLUSTER_BROKERS.split(","),
    clientId: "svc-test",
    logLevel: kafkajs.logLevel.NOTHING,
    retry: { retries: 8, initialRetryTime: 200 },
  });
}

/** One record read back. */
export interface ReadRecord {
  partition: number;
  offset: number;
  key: string | null;
  value: string | null;
  headers: Record<string, string>;
}

/**
 * Reads every record of a topic from the beginning up to its current end offsets.
 *
 * @param kafka the client
 * @param topic the topic
 * @param timeoutMs longest the read may take
 * @returns the records
 */
export async function readTopicBack(
  kafka: kafkajs.Kafka,
  topic: string,
  timeoutMs = 60_000,
): Promise<ReadRecord[]> {
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map<number, number>();
  try {
    for (const o of await admin.fetchTopicOffsets(topic)) ends.set(o.partition, Number(o.high));
  } finally {
    await admin.disconnect();
  }
  const records: ReadRecord[] = [];
  const left = new Set([...ends].filter(([, end]) => end > 0).map(([p]) => p));
  if (left.size === 0) return records;
  const consumer = kafka.consumer({
    groupId: `reader-${crypto.randomUUID()}`,
    maxWaitTimeInMs: 200,
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    let done!: () => void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    await consumer.run({
      eachMessage: ({ partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) {
          if (v !== undefined) headers[k] = String(v);
        }
        records.push({
          partition,
          offset: Number(message.offset),
          key: message.key?.toString() ?? null,
          value: message.value?.toString() ?? null,
          headers,
        });
        if (Number(message.offset) + 1 >= (ends.get(partition) ?? 0)) left.delete(partition);
        if (left.size === 0) done();
        return Promise.resolve();
      },
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      finished,
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`reading ${topic} back took over ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  } finally {
    await consumer.disconnect();
  }
  return records;
}
