/**
 * @module The only importer of the `redis` client: the Store port on a real Redis — one server,
 * a Redis Cluster (detected on connect), or a primary found through Sentinel.
 *
 * Every operation has a deadline, checked by one sweeper per store rather than a timer per
 * command: a connection that stops answering without closing fails its commands with
 * `UnavailableError` (HTTP 503) and is replaced.
 */
import { createClient, createCluster } from "redis";
import { createHash } from "node:crypto";
import {
  type Check,
  type Command,
  type Reply,
  type Script,
  type Store,
  UnavailableError,
} from "./store.ts";
import { backoff } from "../async/backoff.ts";
import { delay } from "../async/delay.ts";
import type { Logger } from "../log.ts";
import { redactUrl } from "../config.ts";
import { type HostPort, parseRedisUrl, type RedisTarget } from "./redis-url.ts";

// deno-lint-ignore no-explicit-any
type Client = any;

/** Waits between connection attempts while Redis is unreachable. */
const RECONNECT_BACKOFF = { initialMs: 50, maxMs: 1000 };
/** How long a command may go unanswered before it fails and its connection is replaced. */
export const COMMAND_TIMEOUT_MS = 1500;
/** How often the sweeper looks for overdue commands. */
const SWEEP_EVERY_MS = 250;
/** How long a command waits for a connection being (re)made before it fails. */
const CONNECT_WAIT_MS = 1000;
/** How long the first connection may take before commands stop waiting for it. */
const FIRST_CONNECT_WAIT_MS = 5000;
const CHECK_TIMEOUT_MS = 1000;
const CONNECT_TIMEOUT_MS = 2000;

/** Options beyond the URL (from the configuration). */
export interface RedisOptions {
  /** PEM text of the CA that signed the servers' certificates (`REDIS_TLS_CA_FILE`). */
  ca?: string;
  /** `REDIS_WAIT_REPLICAS` */
  waitReplicas?: number;
  /** `REDIS_WAIT_TIMEOUT_MS` */
  waitTimeoutMs?: number;
}

/** Redis replies through node-redis: RESP2 arrays, but HGETALL-like replies come as objects. */
function _normalize(reply: unknown): Reply {
  if (reply === undefined || reply === null) return null;
  if (typeof reply === "string" || typeof reply === "number") return reply;
  if (typeof reply === "boolean") return reply ? 1 : null;
  if (reply instanceof Uint8Array) return new TextDecoder().decode(reply);
  if (Array.isArray(reply)) return reply.map(_normalize);
  if (reply instanceof Map) {
    return [...reply.entries()].flatMap(([k, v]) => [String(k), _normalize(v)]);
  }
  if (typeof reply === "object") {
    return Object.entries(reply as Record<string, unknown>).flatMap(([k, v]) => [k, _normalize(v)]);
  }
  return String(reply);
}

/** Redis answers these while restarting or failing over: the store is unavailable, not broken. */
const _TRANSIENT =
  /\b(LOADING|BUSY|MASTERDOWN|READONLY|TRYAGAIN|CLUSTERDOWN|NOREPLICAS|UNBLOCKED)\b/;
/** node-redis errors of a connection that is gone or not made yet. */
const _CONNECTION = /closed|offline|ECONN|socket|not connected|Connection|timed out|ETIMEDOUT/i;

/** Commands with no key: any node of a cluster may answer them. */
const _KEYLESS = new Set([
  "PING",
  "INFO",
  "TIME",
  "PUBLISH",
  "SCAN",
  "ROLE",
  "WAIT",
  "SCRIPT",
  "CLUSTER",
  "DBSIZE",
  "CONFIG",
  "CLIENT",
  "COMMAND",
  "ECHO",
  "FLUSHALL",
  "FLUSHDB",
]);

/**
 * The key a command is routed by on a cluster (undefined: any node).
 *
 * @param args the command
 * @returns its first key
 */
export function routingKey(args: string[]): string | undefined {
  const name = args[0].toUpperCase();
  if (_KEYLESS.has(name)) return undefined;
  if (name === "EVAL" || name === "EVALSHA" || name === "EVAL_RO" || name === "EVALSHA_RO") {
    return Number(args[2]) > 0 ? args[3] : undefined;
  }
  if (name === "XREAD" || name === "XREADGROUP") {
    const i = args.findIndex((a) => a.toUpperCase() === "STREAMS");
    return i < 0 ? undefined : args[i + 1];
  }
  if (name === "OBJECT" || name === "MEMORY") return args[2];
  return args[1];
}

const _sha1 = (text: string) => createHash("sha1").update(text).digest("hex");

/**
 * Most time an operation may wait however busy its connection is: one that keeps answering
 * others bounds a wait by {@link COMMAND_TIMEOUT_MS} of its silence instead (see `#sweep`), and
 * this bounds the rest (a node of a cluster that froze while the others answer).
 */
const QUEUED_MAX_MS = 4 * COMMAND_TIMEOUT_MS;

/** An operation waiting for its reply, with its deadline. */
interface Pending {
  /** When it was sent (epoch ms). */
  sent: number;
  /** How long its connection may stay silent before it fails. */
  timeoutMs: number;
  link: Link | undefined;
  fail: (err: Error) => void;
}

/** One way to the data: a client (one server, or the primary Sentinel named) or a cluster. */
interface Link {
  readonly mode: "single" | "sentinel" | "cluster";
  /** Where it goes, for logs. */
  readonly where: string;
  send(key: string | undefined, args: string[]): Promise<unknown>;
  multi(key: string | undefined, commands: string[][]): Promise<unknown[]>;
  /** Resolves when the link is lost (closed, failed, or replaced). */
  readonly lost: Promise<void>;
  /** Tears it down now; pending commands fail. */
  destroy(reason: string): void;
  /** A connection for SUBSCRIBE. */
  subscriber(): Promise<Client>;
  /** Whether this node or cluster accepts writes now. */
  check(): Promise<Check>;
}

/** The Store port on real Redis: reconnects, follows failovers, bounds every wait. */
export class RedisStore implements Store {
  readonly kind = "redis" as const;
  #target: RedisTarget;
  #options: RedisOptions;
  #log: Logger;
  #url: string;
  #link: Link | undefined;
  #lastError = "";
  #closed = false;
  #shas = new Map<Script, string>();
  #pending = new Set<Pending>();
  /** When each link last answered a command (epoch ms). */
  #answered = new WeakMap<Link, number>();
  #sweeper: ReturnType<typeof setInterval>;
  #lastSweep = Date.now();
  /** Resolved whenever a link becomes ready; replaced after. */
  #linked!: Promise<void>;
  #onLinked!: () => void;
  #firstBy = Date.now() + FIRST_CONNECT_WAIT_MS;
  #loop: Promise<void>;
  #subscriptions = new Map<string, Set<(message: string) => void>>();
  #subscriber: { link: Link; client: Client } | undefined;
  #subscribing: Promise<Client> | undefined;

  /**
   * @param url `REDIS_URL`
   * @param log where connection events go
   * @param options TLS CA and replica waits
   */
  constructor(url: string, log: Logger, options: RedisOptions = {}) {
    this.#url = url;
    this.#target = parseRedisUrl(url);
    this.#options = options;
    this.#log = log.child({ component: "redis" });
    this.#resetLinked();
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_EVERY_MS);
    Deno.unrefTimer(this.#sweeper as unknown as number);
    this.#loop = this.#connectLoop();
  }

  #resetLinked(): void {
    this.#linked = new Promise((resolve) => (this.#onLinked = resolve));
  }

  /**
   * Fails what is overdue; replaces a link that let a command go unanswered. A command is
   * overdue when its connection has answered nothing for its timeout since it was sent: a
   * connection that answers others is alive, and a command queued behind them under load waits
   * its turn (up to {@link QUEUED_MAX_MS}) instead of failing with 503 while Redis works.
   */
  #sweep(): void {
    const now = Date.now();
    const late = now - this.#lastSweep > 4 * SWEEP_EVERY_MS;
    this.#lastSweep = now;
    // A sweep that ran late ran after the event loop was held up (GC, a long task): replies may
    // be waiting unread, so silence is judged at the next sweep, once they have been read.
    if (late) return;
    const stale = new Set<Link>();
    for (const p of this.#pending) {
      const since = Math.max(p.sent, p.link ? this.#answered.get(p.link) ?? 0 : 0);
      if (now - since < p.timeoutMs && now - p.sent < Math.max(p.timeoutMs, QUEUED_MAX_MS)) {
        continue;
      }
      this.#pending.delete(p);
      if (p.link) stale.add(p.link);
      p.fail(
        new UnavailableError(
          "redis",
          p.link ? `no reply from ${p.link.where} in time` : this.#lastError || "not connected",
        ),
      );
    }
    for (const link of stale) {
      if (link === this.#link) {
        this.#log.warn("redis connection unresponsive: replacing it", { where: link.where });
        link.destroy("unresponsive");
      }
    }
  }

  /**
   * Runs `work` with a deadline the sweeper enforces.
   *
   * @param link the link it runs on (replaced if it does not answer), none while connecting
   * @param timeoutMs how long the link may stay silent (from now) before `work` fails
   * @param work the operation
   */
  #bounded<T>(link: Link | undefined, timeoutMs: number, work: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const entry: Pending = { sent: Date.now(), timeoutMs, link, fail: reject };
      this.#pending.add(entry);
      work().then(
        (value) => {
          this.#pending.delete(entry);
          if (link) this.#answered.set(link, Date.now());
          resolve(value);
        },
        (err) => {
          this.#pending.delete(entry);
          // An error reply is an answer too; a connection that failed is replaced anyway.
          if (link) this.#answered.set(link, Date.now());
          reject(err);
        },
      );
    });
  }

  /** The ready link, waiting a bounded time while one is being made. */
  async #ready(): Promise<Link> {
    if (this.#link) return this.#link;
    if (this.#closed) throw new UnavailableError("redis", "closed");
    const wait = Math.max(CONNECT_WAIT_MS, this.#firstBy - Date.now());
    await this.#bounded(undefined, wait, () => this.#linked);
    if (!this.#link) throw new UnavailableError("redis", this.#lastError || "not connected");
    return this.#link;
  }

  #clientOptions(node: HostPort, extra: Record<string, unknown> = {}): Record<string, unknown> {
    const t = this.#target;
    return {
      // RESP2, so replies have the same shapes as `redis.call` inside scripts and as MemoryStore.
      RESP: 2,
      ...(t.username ? { username: t.username } : {}),
      ...(t.password !== undefined ? { password: t.password } : {}),
      // No per-command timer: node-redis arms an AbortSignal.timeout per command, which Deno
      // keeps alive for its whole duration (heap growth, GC pauses: it tripled the tasks' p99).
      // The sweeper bounds every command instead.
      commandOptions: { timeout: 0 },
      // Fail fast while disconnected: callers answer 503 instead of hanging.
      disableOfflineQueue: true,
      socket: {
        host: node.host,
        port: node.port,
        connectTimeout: CONNECT_TIMEOUT_MS,
        ...(t.tls
          ? {
            tls: true,
            // SNI names a host, never an address (RFC 6066); the certificate is checked either way.
            ...(/^[\d.]+$|:/.test(node.host) ? {} : { servername: node.host }),
            ...(this.#options.ca ? { ca: this.#options.ca } : {}),
          }
          : {}),
        // Reconnects are this store's: each goes through discovery again (Sentinel).
        reconnectStrategy: false,
      },
      ...extra,
    };
  }

  async #connectLoop(): Promise<void> {
    let failures = 0;
    while (!this.#closed) {
      try {
        const link = await this.#open();
        if (this.#closed) {
          link.destroy("closed");
          return;
        }
        this.#link = link;
        if (failures > 0 || this.#lastError) {
          this.#log.info("redis connected", { url: redactUrl(this.#url), where: link.where });
        }
        failures = 0;
        this.#lastError = "";
        this.#onLinked();
        this.#resetLinked();
        this.#resubscribe();
        await link.lost;
        if (this.#link === link) this.#link = undefined;
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        if (failures === 0) {
          this.#log.warn("redis connection error", { url: redactUrl(this.#url), error: message });
        }
        this.#lastError = message;
        failures++;
      }
      if (this.#closed) return;
      await delay(backoff(failures, RECONNECT_BACKOFF));
    }
  }

  /** Connects once: discovers the primary (Sentinel) or the cluster, and checks the role. */
  async #open(): Promise<Link> {
    if (this.#target.kind === "sentinel") {
      const { primary, watch } = await this.#askSentinels();
      try {
        return await this.#openClient("sentinel", primary, watch);
      } catch (err) {
        watch.destroy();
        throw err;
      }
    }
    let lastErr: unknown;
    for (const node of this.#target.nodes) {
      try {
        const client = await this.#connectClient(node);
        const info = String(await client.sendCommand(["INFO", "cluster"]));
        if (/cluster_enabled:1/.test(info)) {
          client.destroy();
          return await this.#openCluster();
        }
        return this.#wrapClient("single", node, client);
      } catch (err) {
        lastErr = err;
      }
    }
    throw lastErr instanceof Error ? lastErr : new Error(String(lastErr));
  }

  async #connectClient(node: HostPort, extra: Record<string, unknown> = {}): Promise<Client> {
    const client = createClient(this.#clientOptions(node, extra));
    let failed: ((err: Error) => void) | undefined;
    client.on("error", (err: Error) => failed?.(err));
    try {
      await new Promise<void>((resolve, reject) => {
        failed = reject;
        client.connect().then(() => resolve(), reject);
      });
      return client;
    } catch (err) {
      client.destroy();
      throw err;
    } finally {
      failed = undefined;
    }
  }

  /**
   * The primary the sentinels name, and a subscription that reports a switch. Every sentinel is
   * asked; a majority of them must answer, and the answer of the newest configuration epoch
   * wins: a sentinel that has not heard of a failover yet still names the old primary, which
   * may be back, empty, and saying it is a master.
   */
  async #askSentinels(): Promise<
    { primary: HostPort; watch: { lost: Promise<void>; destroy(): void } }
  > {
    const master = this.#target.master!;
    const nodes = this.#target.nodes;
    const answers = await Promise.all(nodes.map(async (node) => {
      let client: Client | undefined;
      try {
        client = await this.#connectClient(node, { username: undefined, password: undefined });
        const c = client;
        const reply = await this.#bounded(
          undefined,
          COMMAND_TIMEOUT_MS,
          () => c.sendCommand(["SENTINEL", "MASTER", master]),
        ) as string[];
        const info: Record<string, string> = {};
        for (let i = 0; i + 1 < reply.length; i += 2) info[reply[i]] = reply[i + 1];
        return { client, node, info };
      } catch (err) {
        client?.destroy();
        return { error: err instanceof Error ? err.message : String(err), node };
      }
    }));
    const ok = answers.filter((a) => "info" in a) as {
      client: Client;
      node: HostPort;
      info: Record<string, string>;
    }[];
    const release = (keep?: Client) => ok.forEach((a) => a.client !== keep && a.client.destroy());
    if (ok.length < Math.floor(nodes.length / 2) + 1) {
      release();
      const why = answers.map((a) => "error" in a ? a.error : "").filter(Boolean);
      throw new Error(
        `${ok.length} of ${nodes.length} sentinels answered for "${master}" (a majority is needed)${
          why.length ? `: ${why[0]}` : ""
        }`,
      );
    }
    ok.sort((a, b) => Number(b.info["config-epoch"] ?? 0) - Number(a.info["config-epoch"] ?? 0));
    const best = ok[0];
    const flags = best.info.flags ?? "";
    if (!best.info.ip || /o_down|s_down|disconnected/.test(flags)) {
      release();
      throw new Error(`the sentinels see the primary of "${master}" down (${flags || "unknown"})`);
    }
    release(best.client);
    const client = best.client;
    const primary = { host: best.info.ip, port: Number(best.info.port) };
    // The same sentinel tells of a failover: the link to the old primary is dropped at once.
    let onLost!: () => void;
    const lost = new Promise<void>((resolve) => (onLost = resolve));
    client.on("end", onLost);
    client.on("error", onLost);
    try {
      await this.#bounded(
        undefined,
        COMMAND_TIMEOUT_MS,
        () =>
          client.subscribe("+switch-master", (message: string) => {
            if (message.split(" ")[0] === master) onLost();
          }),
      );
    } catch (err) {
      client.destroy();
      throw err;
    }
    return {
      primary,
      watch: {
        lost,
        destroy: () => {
          onLost();
          client.destroy();
        },
      },
    };
  }

  async #openClient(
    mode: "sentinel",
    node: HostPort,
    watch: { lost: Promise<void>; destroy(): void },
  ): Promise<Link> {
    const client = await this.#connectClient(node);
    // Only a node that says it is a primary gets writes (an old primary restarted empty still
    // says master until the sentinels demote it, but then they no longer name it).
    const role = await client.sendCommand(["ROLE"]);
    if (!Array.isArray(role) || role[0] !== "master") {
      client.destroy();
      throw new Error(`${node.host}:${node.port}, named primary, is a ${role?.[0] ?? "?"}`);
    }
    const link = this.#wrapClient(mode, node, client);
    watch.lost.then(() => link.destroy("sentinels switched the primary"));
    link.lost.then(() => watch.destroy());
    return link;
  }

  #wrapClient(mode: "single" | "sentinel", node: HostPort, client: Client): Link {
    let onLost!: () => void;
    const lost = new Promise<void>((resolve) => (onLost = resolve));
    let down = false;
    const subscribers: Client[] = [];
    const destroy = (reason: string) => {
      if (down) return;
      down = true;
      this.#lastError = reason;
      for (const c of [client, ...subscribers]) {
        try {
          c.destroy();
        } catch { /* already closed */ }
      }
      onLost();
    };
    client.on("error", (err: Error) => destroy(err.message));
    client.on("end", () => destroy("connection closed"));
    const where = `${node.host}:${node.port}`;
    return {
      mode,
      where,
      lost,
      destroy,
      send: (_key, args) => client.sendCommand(args),
      multi: (_key, commands) => {
        const tx = client.multi();
        for (const c of commands) tx.addCommand(c);
        return tx.exec();
      },
      subscriber: async () => {
        const sub = client.duplicate();
        subscribers.push(sub);
        sub.on("error", () => destroy("subscriber connection failed"));
        await sub.connect();
        return sub;
      },
      check: async () => {
        const role = await client.sendCommand(["ROLE"]);
        const name = Array.isArray(role) ? String(role[0]) : "?";
        return name === "master" ? { ok: true } : {
          ok: false,
          detail: `${where} is a ${name === "slave" ? "replica" : name}: read-only`,
        };
      },
    };
  }

  async #openCluster(): Promise<Link> {
    const t = this.#target;
    const defaults = this.#clientOptions(t.nodes[0]) as { socket: Record<string, unknown> };
    delete defaults.socket.host;
    delete defaults.socket.port;
    // Node clients of a cluster reconnect themselves; the topology is read again one second
    // after a node starts reconnecting, so a failed-over master's slots are found on its
    // replica.
    defaults.socket.reconnectStrategy = (retries: number) =>
      this.#closed ? false : backoff(retries + 1, RECONNECT_BACKOFF);
    const cluster = createCluster(
      {
        rootNodes: t.nodes.map((n) => ({ socket: { host: n.host, port: n.port } })),
        defaults,
        RESP: 2,
        commandOptions: { timeout: 0 },
        useReplicas: false,
        topologyRefreshOnReconnectionAttemptStrategy: 1000,
      } as unknown as Parameters<typeof createCluster>[0],
    );
    cluster.on("error", (err: Error) => {
      this.#lastError = err.message;
    });
    await this.#bounded(undefined, CONNECT_TIMEOUT_MS * 2, () => cluster.connect()).catch(
      (err) => {
        cluster.destroy();
        throw err;
      },
    );
    let onLost!: () => void;
    const lost = new Promise<void>((resolve) => (onLost = resolve));
    let down = false;
    const where = t.nodes.map((n) => `${n.host}:${n.port}`).join(",");
    return {
      mode: "cluster",
      where: `cluster ${where}`,
      lost,
      destroy: (reason) => {
        if (down) return;
        down = true;
        this.#lastError = reason;
        try {
          cluster.destroy();
        } catch { /* already closed */ }
        onLost();
      },
      send: (key, args) => cluster.sendCommand(key, false, args),
      multi: (key, commands) => {
        const tx = cluster.multi(key);
        for (const c of commands) tx.addCommand(key, false, c);
        return tx.exec();
      },
      // A cluster propagates PUBLISH to every node: one subscriber connection anywhere hears it.
      subscriber: () => Promise.resolve(cluster),
      check: async () => {
        const info = String(await cluster.sendCommand(undefined, true, ["CLUSTER", "INFO"]));
        return /cluster_state:ok/.test(info)
          ? { ok: true }
          : { ok: false, detail: "cluster_state is not ok" };
      },
    };
  }

  #unavailable(err: unknown): Error {
    if (err instanceof UnavailableError) return err;
    const message = err instanceof Error ? err.message : String(err);
    if (
      !(err instanceof Error) || !this.#link || _CONNECTION.test(message) ||
      // Replies of a Redis that is restarting or failing over: unavailable, not broken.
      _TRANSIENT.test(message)
    ) {
      // A primary turned replica under us (failover not yet announced): find the new one.
      if (/\bREADONLY\b/.test(message) && this.#link?.mode === "sentinel") {
        this.#link.destroy("the primary became a replica");
      }
      return new UnavailableError("redis", message);
    }
    return err;
  }

  /** Sends one command on the current link, bounded. */
  async #send(args: string[], timeoutMs = COMMAND_TIMEOUT_MS): Promise<unknown> {
    const link = await this.#ready();
    return await this.#bounded(link, timeoutMs, () => link.send(routingKey(args), args));
  }

  async command(command: Command): Promise<Reply> {
    try {
      return _normalize(await this.#send(command.map(String)));
    } catch (err) {
      throw this.#unavailable(err);
    }
  }

  async multi(commands: Command[]): Promise<Reply[]> {
    try {
      const link = await this.#ready();
      const args = commands.map((c) => c.map(String));
      if (args.length === 0) return [];
      const replies = await this.#bounded(
        link,
        COMMAND_TIMEOUT_MS,
        () => link.multi(routingKey(args[0]), args),
      );
      return (replies as unknown[]).map(_normalize);
    } catch (err) {
      throw this.#unavailable(err);
    }
  }

  async pipeline(commands: Command[]): Promise<Reply[]> {
    if (commands.length === 0) return [];
    try {
      const link = await this.#ready();
      // node-redis writes the commands issued in one tick together: one round trip per node.
      const replies = await this.#bounded(
        link,
        COMMAND_TIMEOUT_MS,
        () =>
          Promise.all(commands.map((c) => {
            const args = c.map(String);
            return link.send(routingKey(args), args);
          })),
      );
      return replies.map(_normalize);
    } catch (err) {
      throw this.#unavailable(err);
    }
  }

  async eval(script: Script, keys: string[], args: (string | number)[]): Promise<Reply> {
    let sha = this.#shas.get(script);
    if (!sha) this.#shas.set(script, sha = _sha1(script.lua));
    // One array, built once: a batch's arguments run to hundreds, on every claim and finish.
    const command = ["EVALSHA", sha, String(keys.length)];
    for (const key of keys) command.push(key);
    for (const arg of args) command.push(String(arg));
    try {
      try {
        return _normalize(await this.#send(command));
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith("NOSCRIPT")) throw err;
      }
      // EVAL caches the script on the node that runs it (each node of a cluster learns it once).
      command[0] = "EVAL";
      command[1] = script.lua;
      return _normalize(await this.#send(command));
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (
        err instanceof Error && !(err instanceof UnavailableError) &&
        /ERR|script/i.test(message) && !_TRANSIENT.test(message) && !_CONNECTION.test(message) &&
        this.#link
      ) {
        throw new Error(`Script "${script.name}" failed: ${message}`);
      }
      throw this.#unavailable(err);
    }
  }

  async replicate(keys: string[]): Promise<void> {
    const replicas = this.#options.waitReplicas ?? 0;
    if (replicas <= 0 || keys.length === 0) return;
    const timeoutMs = this.#options.waitTimeoutMs ?? 1000;
    const waitOn = async (key: string) => {
      const link = await this.#ready();
      // WAIT counts what this connection wrote; on a cluster it goes to the key's master, the
      // connection that carried the write.
      const acked = Number(
        await this.#bounded(
          link,
          timeoutMs + COMMAND_TIMEOUT_MS,
          () => link.send(key, ["WAIT", String(replicas), String(timeoutMs)]),
        ),
      );
      if (acked < replicas) {
        throw new UnavailableError(
          "redis",
          `${acked} of ${replicas} replicas acknowledged the write within ${timeoutMs} ms`,
        );
      }
    };
    try {
      await Promise.all((this.#link?.mode === "cluster" ? keys : keys.slice(0, 1)).map(waitOn));
    } catch (err) {
      throw this.#unavailable(err);
    }
  }

  /** Subscribes every channel again on a new link's subscriber connection. */
  #resubscribe(): void {
    if (this.#subscriptions.size === 0) return;
    this.#subscriberClient().catch((err) =>
      this.#log.warn("redis resubscribe failed", { error: err })
    );
  }

  async #subscriberClient(): Promise<Client> {
    const link = await this.#ready();
    if (this.#subscriber?.link === link) return this.#subscriber.client;
    if (this.#subscribing) return await this.#subscribing;
    this.#subscribing = (async () => {
      const client = await this.#bounded(link, COMMAND_TIMEOUT_MS, () => link.subscriber());
      for (const [channel, listeners] of this.#subscriptions) {
        for (const l of listeners) await client.subscribe(channel, l);
      }
      this.#subscriber = { link, client };
      return client;
    })().finally(() => (this.#subscribing = undefined));
    return await this.#subscribing;
  }

  async subscribe(
    channel: string,
    onMessage: (message: string) => void,
  ): Promise<() => Promise<void>> {
    const listener = (message: string) => onMessage(message);
    let set = this.#subscriptions.get(channel);
    if (!set) this.#subscriptions.set(channel, set = new Set());
    set.add(listener);
    try {
      const client = await this.#subscriberClient();
      // Listeners are a set per channel: subscribing one the resubscription already added is a
      // no-op.
      await this.#bounded(
        this.#link,
        COMMAND_TIMEOUT_MS,
        () => client.subscribe(channel, listener),
      );
    } catch (err) {
      set.delete(listener);
      throw this.#unavailable(err);
    }
    return async () => {
      set.delete(listener);
      const sub = this.#subscriber?.client;
      if (sub?.isOpen) await sub.unsubscribe(channel, listener).catch(() => {});
    };
  }

  async check(): Promise<Check> {
    const link = this.#link;
    if (!link) return { ok: false, detail: this.#lastError || "not connected" };
    try {
      return await this.#bounded(link, CHECK_TIMEOUT_MS, () => link.check());
    } catch (err) {
      return { ok: false, detail: err instanceof Error ? err.message : String(err) };
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweeper);
    this.#link?.destroy("closed");
    this.#onLinked();
    for (const p of this.#pending) p.fail(new UnavailableError("redis", "closed"));
    this.#pending.clear();
    await this.#loop;
  }
}
