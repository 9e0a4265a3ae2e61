/**
 * @module Every Redis key and pub/sub channel of async tasks, built in this one file.
 *
 * A deployment's tasks live in {@link TASK_SHARDS} shards, each one hash tag with `KEY_PREFIX`
 * inside it (`svc:{svc:tasks:2}:…`), so each shard is one Redis Cluster slot and two deployments
 * never share one. A shard holds, per type, a `pending` list and a `scheduled` set, and for all
 * types its `active` set, its status indexes, its task records and its idempotency records: every
 * script touches one shard. A task's shard is a hash of its refcode (so a refcode alone finds its
 * record); a type spreads over `shards` of them (see {@link typeShards}). The shards' tags are
 * picked so their slots sit in evenly spaced parts of the slot space: on a cluster whose masters
 * hold equal ranges, the shards spread over the masters.
 */
import { clusterSlot, key } from "../infra/store.ts";

/**
 * Shards of one deployment's tasks. Fixed: a refcode's shard is a hash of it modulo this number,
 * so changing it would lose track of every task. Four keeps a refcode at 128 random bits or more
 * whatever shard it must land in (see `client.ts`).
 */
export const TASK_SHARDS = 4;

/** The keys of one shard. */
export interface ShardKeys {
  /** The shard's index, 0 ≤ index < {@link TASK_SHARDS}. */
  index: number;
  /** Hash of one task: status, input, result, error, progress, attempts, times, lease. */
  record(refcode: string): string;
  /** What {@link ShardKeys.record} starts with (the claim script appends the refcodes it pops). */
  recordPrefix: string;
  /** List of refcodes of a type waiting to run, oldest first (RPUSH, LPOP). */
  pending(type: string): string;
  /** Sorted set of refcodes waiting for a retry or a delayed start; score = due time (ms). */
  scheduled(type: string): string;
  /** Sorted set of running refcodes; score = lease expiry (ms, Redis server time). */
  active: string;
  /** Sorted set of refcodes in a terminal status; score = when they entered it (ms). */
  status(status: "completed" | "failed" | "cancelled"): string;
  /** String `refcode fingerprint` of one `Idempotency-Key` (hashed), kept 24 h. */
  idempotency(keyHash: string): string;
}

/** The keys and channels of one deployment's tasks (one `KEY_PREFIX`). */
export interface TaskKeys {
  /** The shards, by index. */
  shards: readonly ShardKeys[];
  /** The shard a refcode's task lives in. */
  shardOf(refcode: string): ShardKeys;
  /** The record of a task (in its shard). */
  record(refcode: string): string;
  /** Channel: a task of type `<type>` in shard `<index>` became ready: `<type>:<index>`. */
  readyChannel: string;
  /** Channel: `<refcode>` was asked to cancel while running. */
  cancelChannel: string;
  /** Channel of one task: its status once it is terminal (long-polls subscribe to it). */
  doneChannel(refcode: string): string;
  /** What {@link TaskKeys.doneChannel} starts with (scripts append the refcode). */
  donePrefix: string;
}

/**
 * FNV-1a (32 bits) of a text: how refcodes, idempotency keys and type names pick shards.
 *
 * @param text the text
 * @returns an unsigned 32-bit hash
 */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * The shard index of a refcode: a hash of the whole refcode (its random characters), so the
 * shard tells nothing that the refcode does not.
 *
 * @param refcode the refcode
 * @returns 0 ≤ index < {@link TASK_SHARDS}
 */
export function shardIndex(refcode: string): number {
  return fnv1a(refcode) % TASK_SHARDS;
}

/**
 * The shards a type's new tasks go to: `count` of them, evenly spaced from an offset its name
 * picks (so one-shard types do not all share shard 0).
 *
 * @param type the type's name
 * @param count how many (1 ≤ count ≤ {@link TASK_SHARDS})
 * @returns shard indexes, ascending
 */
export function typeShards(type: string, count: number): number[] {
  const offset = fnv1a(type) % TASK_SHARDS;
  const out = new Set<number>();
  for (let i = 0; i < count; i++) {
    out.add((offset + Math.floor((i * TASK_SHARDS) / count)) % TASK_SHARDS);
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * The hash tag of shard `index`: `<prefix>:tasks:<index>`, with a `~n` suffix when needed so
 * its slot lies within 256 slots of the middle of the index-th of {@link TASK_SHARDS} equal parts
 * of the slot space (deterministic: every process finds the same tag; about 32 tries). Close to
 * the middles, the slots stay clear of the boundaries of 2, 3 or 6 masters' equal ranges (5461,
 * 10923, …): on 3 masters the middle one holds shards 1 and 2, the others one each.
 */
function _tag(prefix: string, index: number): string {
  const width = 16384 / TASK_SHARDS;
  const centre = (index + 0.5) * width;
  const fits = (tag: string) => Math.abs(clusterSlot(`{${tag}}`) - centre) <= 256;
  const base = `${prefix}:tasks:${index}`;
  if (fits(base)) return base;
  for (let n = 1;; n++) if (fits(`${base}~${n}`)) return `${base}~${n}`;
}

const _cache = new Map<string, TaskKeys>();

/**
 * Builds the keys of async tasks under a prefix.
 *
 * @param prefix `KEY_PREFIX`
 * @returns the keys and channels
 * @example
 * ```ts
 * taskKeys("svc").shards[0].pending("sleep"); // "svc:{svc:tasks:0~…}:pending:sleep"
 * ```
 */
export function taskKeys(prefix: string): TaskKeys {
  const cached = _cache.get(prefix);
  if (cached) return cached;
  const shards: ShardKeys[] = [];
  for (let index = 0; index < TASK_SHARDS; index++) {
    const base = `${key(prefix, _tag(prefix, index))}:`;
    shards.push({
      index,
      record: (refcode) => `${base}t:${refcode}`,
      recordPrefix: `${base}t:`,
      pending: (type) => `${base}pending:${type}`,
      scheduled: (type) => `${base}scheduled:${type}`,
      active: `${base}active`,
      status: (status) => `${base}status:${status}`,
      idempotency: (keyHash) => `${base}idem:${keyHash}`,
    });
  }
  const channels = `${key(prefix, "tasks")}:`;
  const keys: TaskKeys = {
    shards,
    shardOf: (refcode) => shards[shardIndex(refcode)],
    record: (refcode) => shards[shardIndex(refcode)].record(refcode),
    readyChannel: `${channels}ready`,
    cancelChannel: `${channels}cancel`,
    doneChannel: (refcode) => `${channels}done:${refcode}`,
    donePrefix: `${channels}done:`,
  };
  _cache.set(prefix, keys);
  return keys;
}
