/**
 * @module The only importer of the `redis` client: the Store port on a real Redis.
 */
import { createClient } from "redis";
import {
  type Check,
  type Command,
  type Reply,
  type Script,
  type Store,
  UnavailableError,
} from "./store.ts";
import { backoff } from "../async/backoff.ts";
import { deadline, settleBy } from "../async/deadline.ts";
import type { Logger } from "../log.ts";
import { redactUrl } from "../config.ts";

// deno-lint-ignore no-explicit-any
type Client = any;

const CHECK_TIMEOUT_MS = 1000;
const FIRST_CONNECT_WAIT_MS = 3000;

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
const _TRANSIENT = /\b(LOADING|BUSY|MASTERDOWN|READONLY|TRYAGAIN|CLUSTERDOWN|NOREPLICAS)\b/;

const _args = (command: Command) => command.map(String);

/** The Store port on real Redis, with automatic reconnects. */
export class RedisStore implements Store {
  readonly kind = "redis" as const;
  #client: Client;
  #subscriber: Client | undefined;
  #shas = new Map<Script, string>();
  #log: Logger;
  #url: string;
  #lastError = "";
  #closed = false;
  /** Settles once the first connection attempt ended; commands wait for it, not after. */
  #connecting: Promise<void>;

  /**
   * @param url `redis://` or `rediss://` URL
   * @param log where connection events go
   */
  constructor(url: string, log: Logger) {
    this.#url = url;
    this.#log = log.child({ component: "redis" });
    this.#client = this.#create();
    this.#connecting = this.#first(this.#client);
  }

  async #first(client: Client): Promise<void> {
    const ready = new Promise<void>((resolve) => client.once("ready", resolve));
    await settleBy(ready, Date.now() + FIRST_CONNECT_WAIT_MS);
  }

  /** The client, once the first connection attempt is over. */
  async #ready(): Promise<Client> {
    if (!this.#client.isReady) await this.#connecting;
    return this.#client;
  }

  #create(): Client {
    const client = createClient({
      url: this.#url,
      // RESP2, so replies have the same shapes as `redis.call` inside scripts and as MemoryStore.
      RESP: 2,
      // No per-command timer: node-redis arms an AbortSignal.timeout per command, which Deno
      // keeps alive for its whole 5 s (heap growth, GC pauses: it tripled the tasks' p99). A
      // dead connection is still detected by the socket and readiness has its own PING timeout.
      commandOptions: { timeout: 0 },
      // Fail fast while disconnected: callers answer 503 instead of hanging.
      disableOfflineQueue: true,
      socket: {
        connectTimeout: 2000,
        reconnectStrategy: (retries: number) =>
          this.#closed ? false : backoff(retries + 1, { initialMs: 50, maxMs: 1000 }),
      },
    });
    let down = false;
    client.on("error", (err: Error) => {
      this.#lastError = err.message;
      if (!down) {
        this.#log.warn("redis connection error", { url: redactUrl(this.#url), error: err.message });
      }
      down = true;
    });
    client.on("ready", () => {
      if (down) this.#log.info("redis reconnected", { url: redactUrl(this.#url) });
      down = false;
      this.#lastError = "";
    });
    client.connect().catch((err: Error) => {
      // The reconnect strategy keeps trying; readiness shows the error meanwhile.
      this.#lastError = err.message;
    });
    return client;
  }

  #unavailable(err: unknown): Error {
    if (
      !this.#client.isReady || !(err instanceof Error) ||
      /closed|offline|ECONN|socket/i.test(err.message) ||
      // Replies of a Redis that is restarting or failing over: unavailable, not broken.
      _TRANSIENT.test(err.message)
    ) {
      return new UnavailableError("redis", err instanceof Error ? err.message : String(err));
    }
    return err;
  }

  async command(command: Command): Promise<Reply> {
    try {
      return _normalize(await (await this.#ready()).sendCommand(_args(command)));
    } catch (err) {
      throw this.#unavailable(err);
    }
  }

  async multi(commands: Command[]): Promise<Reply[]> {
    const tx = (await this.#ready()).multi();
    for (const c of commands) tx.addCommand(_args(c));
    try {
      return (await tx.exec() as unknown[]).map(_normalize);
    } catch (err) {
      throw this.#unavailable(err);
    }
  }

  async pipeline(commands: Command[]): Promise<Reply[]> {
    const tx = (await this.#ready()).multi();
    for (const c of commands) tx.addCommand(_args(c));
    try {
      return (await tx.execAsPipeline() as unknown[]).map(_normalize);
    } catch (err) {
      throw this.#unavailable(err);
    }
  }

  async eval(script: Script, keys: string[], args: (string | number)[]): Promise<Reply> {
    const rest = [String(keys.length), ...keys, ...args.map(String)];
    const sha = this.#shas.get(script);
    await this.#ready();
    try {
      if (sha) {
        try {
          return _normalize(await this.#client.sendCommand(["EVALSHA", sha, ...rest]));
        } catch (err) {
          if (!(err instanceof Error) || !err.message.startsWith("NOSCRIPT")) throw err;
        }
      }
      const loaded = String(await this.#client.sendCommand(["SCRIPT", "LOAD", script.lua]));
      this.#shas.set(script, loaded);
      return _normalize(await this.#client.sendCommand(["EVALSHA", loaded, ...rest]));
    } catch (err) {
      if (
        err instanceof Error && /ERR|script/i.test(err.message) && !_TRANSIENT.test(err.message) &&
        this.#client.isReady
      ) {
        throw new Error(`Script "${script.name}" failed: ${err.message}`);
      }
      throw this.#unavailable(err);
    }
  }

  async subscribe(
    channel: string,
    onMessage: (message: string) => void,
  ): Promise<() => Promise<void>> {
    await this.#ready();
    if (!this.#subscriber) {
      this.#subscriber = this.#client.duplicate();
      this.#subscriber.on("error", () => {});
      await this.#subscriber.connect();
    }
    const sub = this.#subscriber;
    const listener = (message: string) => onMessage(message);
    await sub.subscribe(channel, listener);
    return async () => {
      if (sub.isOpen) await sub.unsubscribe(channel, listener);
    };
  }

  async check(): Promise<Check> {
    if (!this.#client.isReady) return { ok: false, detail: this.#lastError || "not connected" };
    try {
      await deadline(
        this.#client.sendCommand(["PING"]),
        CHECK_TIMEOUT_MS,
        () => new Error("PING timed out"),
      );
      return { ok: true };
    } catch (err) {
      return { ok: false, detail: err instanceof Error ? err.message : String(err) };
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const c of [this.#subscriber, this.#client]) {
      if (!c) continue;
      try {
        if (c.isOpen) await c.close();
        else c.destroy();
      } catch {
        c.destroy();
      }
    }
  }
}
