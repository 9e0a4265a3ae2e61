/**
 * @module The storage port every feature uses: Redis commands, atomic scripts and pub/sub,
 * served by real Redis (`redis.ts`) or by the embedded store (`memory-store.ts`).
 */

/** A Redis reply, RESP2-shaped: bulk strings, integers, nil and arrays. */
export type Reply = string | number | null | Reply[];

/** One command with its arguments, e.g. `["HSET", key, "status", "queued"]`. */
export type Command = (string | number)[];

/**
 * An atomic script: Lua, run with EVALSHA by Redis and by the embedded store's Lua VM alike
 * (Redis 7's scripting surface, Lua 5.1 semantics: see `lua.ts`).
 */
export interface Script {
  /** A name for logs and errors. */
  readonly name: string;
  /** Lua source; receives KEYS and ARGV as strings. */
  readonly lua: string;
}

/** The result of a readiness check. */
export interface Check {
  /** Whether it answers. */
  ok: boolean;
  /** Why not, when it does not. */
  detail?: string;
}

/** A Redis-like store. */
export interface Store {
  /** `redis` or `memory`. */
  readonly kind: "redis" | "memory";
  /** Runs one command. */
  command(command: Command): Promise<Reply>;
  /** Runs commands atomically (MULTI/EXEC) in one round trip; returns each reply. */
  multi(commands: Command[]): Promise<Reply[]>;
  /** Runs commands in one round trip without atomicity (a pipeline). */
  pipeline(commands: Command[]): Promise<Reply[]>;
  /** Runs a script atomically. */
  eval(script: Script, keys: string[], args: (string | number)[]): Promise<Reply>;
  /**
   * Subscribes to a pub/sub channel; messages published with `PUBLISH` (also from scripts)
   * reach `onMessage`. Resolves once subscribed, with the function that unsubscribes.
   */
  subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>>;
  /**
   * Waits until `REDIS_WAIT_REPLICAS` replicas hold every write made so far on the connections
   * that carry `keys` (Redis `WAIT` on each key's node); at once when none are asked for. Work
   * is answered 201/202 only after it.
   *
   * @param keys keys just written (one per node is enough)
   * @throws {UnavailableError} when fewer acknowledge within `REDIS_WAIT_TIMEOUT_MS`
   */
  replicate(keys: string[]): Promise<void>;
  /** Whether the store accepts writes now: it answers, and is a primary (short timeout). */
  check(): Promise<Check>;
  /** Closes every connection. */
  close(): Promise<void>;
}

/** The store cannot be reached; HTTP answers 503. */
export class UnavailableError extends Error {
  /**
   * Creates the error for one dependency.
   *
   * @param dependency `redis` or `kafka`
   * @param detail what failed
   */
  constructor(readonly dependency: string, detail: string) {
    super(`${dependency} is unavailable: ${detail}`);
    this.name = "UnavailableError";
  }
}

const _defined: Script[] = [];

/**
 * Declares an atomic script: its Lua source runs on Redis and on the embedded store alike.
 *
 * @param script name and Lua source
 * @returns the same object, typed
 * @example
 * ```ts
 * // KEYS[1] counter; ARGV[1] step. Returns the new value.
 * const incr = defineScript({
 *   name: "incr",
 *   lua: `return redis.call("INCRBY", KEYS[1], ARGV[1])`,
 * });
 * ```
 */
export function defineScript(script: Script): Script {
  _defined.push(script);
  return script;
}

/**
 * Every script declared so far: the runtime's once its modules are loaded (the differential
 * test of the scripts checks it runs each of them on Redis and on the embedded store).
 *
 * @returns the scripts, in the order they were declared
 */
export function definedScripts(): readonly Script[] {
  return _defined;
}

/**
 * Builds a key under the deployment's prefix with a Redis Cluster hash tag, so the keys of one
 * entity share a slot: `key("svc", "t:abc", "state")` → `svc:{t:abc}:state`.
 *
 * @param prefix `KEY_PREFIX`
 * @param tag the part that picks the cluster slot
 * @param parts the rest of the key
 * @returns the key
 */
export function key(prefix: string, tag: string, ...parts: string[]): string {
  // A template and a loop rather than an array joined: this runs several times per request.
  let out = `${prefix}:{${tag}}`;
  for (const part of parts) out += `:${part}`;
  return out;
}

/**
 * The part of a key that picks its Redis Cluster slot: what is inside the first `{…}` when it
 * is not empty, else the whole key.
 *
 * @param key a key
 * @returns its hash tag
 */
export function hashTag(key: string): string {
  const open = key.indexOf("{");
  if (open >= 0) {
    const close = key.indexOf("}", open + 1);
    if (close > open + 1) return key.slice(open + 1, close);
  }
  return key;
}

const _CRC16 = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    table[i] = c;
  }
  return table;
})();

/**
 * The Redis Cluster slot of a key: CRC16 (XMODEM) of its hash tag, mod 16384.
 *
 * @param key a key
 * @returns 0..16383
 */
export function clusterSlot(key: string): number {
  let crc = 0;
  for (const byte of new TextEncoder().encode(hashTag(key))) {
    crc = ((crc << 8) & 0xffff) ^ _CRC16[((crc >> 8) ^ byte) & 0xff];
  }
  return crc & 16383;
}

/**
 * Turns a flat `[field, value, field, value]` reply (HGETALL) into an object.
 *
 * @param reply the reply
 * @returns the fields
 */
export function toHash(reply: Reply): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  return out;
}
