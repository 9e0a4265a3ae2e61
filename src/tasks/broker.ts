/**
 * @module Every state change of a task, each one atomic: a Lua script (run by Redis and by the
 * embedded store alike) under a header listing KEYS, ARGV and the return value.
 *
 * Layout (see `keys.ts`), per shard: a hash per task; per type a `pending` list (ready, FIFO
 * within the shard) and a `scheduled` sorted set (retries and delayed starts, by due time); one
 * `active` sorted set of running tasks by lease expiry; one sorted set per status for listings.
 * Every script runs in one shard. Times are the Redis server's clock (`TIME`), so leases never
 * depend on the clocks of worker machines.
 *
 * A cancelled task that is still in a `pending` list stays there and is skipped when popped
 * (cancel is O(1) instead of an O(n) LREM); every pop checks that the record is still `queued`.
 */
import { defineScript, type Reply, type Script, type Store, toHash } from "../infra/store.ts";
import type { ShardKeys, TaskKeys } from "./keys.ts";
import type { JobStatus } from "../jobs/status.ts";
import { NOW_LUA } from "../jobs/lease.ts";

/** Longest listing kept per terminal status (the newest entries win). */
export const INDEX_CAP = 10_000;

/** Most entries of each queue a listing of queued or running tasks reads. */
const LIVE_SCAN = 1000;

/** Most tasks one reclaim pass handles. */
const RECLAIM_BATCH = 500;

/** Most `pending` entries one claim looks at (cancelled ones included). */
const CLAIM_BUDGET = 1000;

/** Most due `scheduled` entries one claim moves to `pending`, per type. */
const FORWARD_BATCH = 100;

/** Error recorded when a task's worker stopped renewing its lease on its last attempt. */
export const LEASE_EXPIRED_ERROR = "The worker running it stopped responding (lease expired)";

/** A task's record as stored (all fields are strings; absent ones are missing). */
export type TaskRecord = Record<string, string>;

/** A task handed to a worker by {@link TaskBroker.claim}. */
export interface ClaimedTask {
  refcode: string;
  type: string;
  /** The input as enqueued (JSON). */
  input: string;
  attempt: number;
  maxAttempts: number;
  /** When it became ready to run (ms, server clock): enqueue, retry due time or reclaim. */
  readyAt: number;
  /** The lease token: proves ownership to `finish`, `renew` and `progress`. */
  token: string;
}

/** How a run ended, for {@link TaskBroker.finish}. */
export type Outcome =
  | { kind: "ok"; result: string }
  | { kind: "retry"; error: string; delayMs: number }
  | { kind: "fail"; error: string }
  | { kind: "release" };

/** One run to close. */
export interface FinishEntry {
  refcode: string;
  /** The task's type (its pending list and scheduled set may receive it). */
  type: string;
  token: string;
  outcome: Outcome;
}

/** What `finish` did: the status the task is now in, or `lost` when the lease was not ours. */
export type FinishResult = JobStatus | "lost";

/** What `enqueue` takes. */
export interface EnqueueEntry {
  refcode: string;
  type: string;
  input: string;
  maxAttempts: number;
  ttlMs: number;
  failedTtlMs: number;
  delayMs: number;
  idempotency?: { keyHash: string; fingerprint: string; ttlMs: number };
}

// Shared Lua helper: end a task in a terminal status (record and more fields, index, TTL,
// notification on the task's own channel). An empty `lease` means none: no token matches it.
// Scripts trim the indexes they touched once, at their end (`trim`).
const TERMINAL = `
local function terminal(rkey, ref, status, idx, ttl, done, ...)
  redis.call("HSET", rkey, "status", status, "updated_at", now, "finished_at", now, "lease", "",
    ...)
  redis.call("ZADD", idx, now, ref)
  redis.call("PEXPIRE", rkey, ttl)
  redis.call("PUBLISH", done .. ref, status)
end
local function trim(cap, ...)
  for _, idx in ipairs({...}) do redis.call("ZREMRANGEBYRANK", idx, 0, -cap - 1) end
end
`;

// KEYS[1] record, KEYS[2] pending(type), KEYS[3] scheduled(type), KEYS[4] idempotency key
//   (optional); all in the task's shard
// ARGV[1] refcode, ARGV[2] type, ARGV[3] input JSON, ARGV[4] max attempts, ARGV[5] TTL ms after
//   completed/cancelled, ARGV[6] TTL ms after failed, ARGV[7] delay ms, ARGV[8] ready channel,
//   ARGV[9] request fingerprint, ARGV[10] idempotency TTL ms, ARGV[11] ready message
//   (`<type>:<shard>`)
// Returns {"created"|"existing"|"conflict", refcode}: existing/conflict name the key's task.
// Workers are told only when the list was empty: a longer list means an earlier push told them
// already and they are still claiming (a claim reports which lists it left non-empty). A
// delayed task tells them when it is the list's earliest: they sleep until the earliest one.
const ENQUEUE = defineScript({
  name: "tasks.enqueue",
  lua: NOW_LUA + `
if KEYS[4] then
  local seen = redis.call("GET", KEYS[4])
  if seen then
    local sp = string.find(seen, " ", 1, true)
    local ref = string.sub(seen, 1, sp - 1)
    if string.sub(seen, sp + 1) == ARGV[9] then return {"existing", ref} end
    return {"conflict", ref}
  end
  redis.call("SET", KEYS[4], ARGV[1] .. " " .. ARGV[9], "PX", ARGV[10])
end
local due = now + tonumber(ARGV[7])
redis.call("HSET", KEYS[1], "type", ARGV[2], "status", "queued", "input", ARGV[3],
  "attempts", 0, "max_attempts", ARGV[4], "ttl_ms", ARGV[5], "failed_ttl_ms", ARGV[6],
  "created_at", now, "updated_at", now, "ready_at", due)
if due > now then
  redis.call("ZADD", KEYS[3], due, ARGV[1])
  -- The new earliest start: idle workers learn when to claim (they sleep until the earliest).
  if redis.call("ZRANGE", KEYS[3], 0, 0)[1] == ARGV[1] then
    redis.call("PUBLISH", ARGV[8], ARGV[11])
  end
else
  if redis.call("RPUSH", KEYS[2], ARGV[1]) == 1 then redis.call("PUBLISH", ARGV[8], ARGV[11]) end
end
return {"created", ARGV[1]}
`,
});

// KEYS[1] active, then for each type i: KEYS[2i] pending(type), KEYS[2i+1] scheduled(type); all
//   in one shard
// ARGV[1] the shard's record key prefix, ARGV[2] lease ms, ARGV[3] lease token prefix, ARGV[4]
//   worker id, then for each type i: ARGV[4+i] how many to claim (0: only move its due tasks)
// Moves due scheduled tasks to pending, then pops and starts up to the asked number per type.
// The records of popped refcodes are the one kind of key a script reaches without its name in
// KEYS: a pop learns them; they are in the shard's slot (the refcode picks the shard).
// Returns {ms until the next scheduled task of these types is due or -1, the indexes i of the
//   types whose pending list is not empty afterwards, then per claimed task: refcode, type,
//   input, attempt, max attempts, ready_at}
const CLAIM = defineScript({
  name: "tasks.claim",
  lua: NOW_LUA + `
local more = {}
local out = {-1, more}
local next_due = nil
local budget = ${CLAIM_BUDGET}
local lease = tonumber(ARGV[2])
for i = 1, (#KEYS - 1) / 2 do
  local pending, sched = KEYS[2 * i], KEYS[2 * i + 1]
  local due = redis.call("ZRANGEBYSCORE", sched, "-inf", now, "LIMIT", 0, ${FORWARD_BATCH})
  for _, ref in ipairs(due) do
    redis.call("RPUSH", pending, ref)
    redis.call("ZREM", sched, ref)
  end
  local want = tonumber(ARGV[4 + i])
  while want > 0 and budget > 0 do
    local ref = redis.call("LPOP", pending)
    if not ref then break end
    budget = budget - 1
    local rkey = ARGV[1] .. ref
    local f = redis.call("HMGET", rkey, "status", "type", "input", "attempts", "max_attempts",
      "ready_at")
    if f[1] == "queued" then
      local attempt = tonumber(f[4]) + 1
      redis.call("HSET", rkey, "status", "in_progress", "attempts", attempt,
        "lease", ARGV[3] .. "/" .. attempt, "worker", ARGV[4], "started_at", now,
        "updated_at", now)
      redis.call("ZADD", KEYS[1], now + lease, ref)
      table.insert(out, ref)
      table.insert(out, f[2])
      table.insert(out, f[3])
      table.insert(out, attempt)
      table.insert(out, tonumber(f[5]))
      table.insert(out, tonumber(f[6]))
      want = want - 1
    end
  end
  if redis.call("LLEN", pending) > 0 then table.insert(more, i) end
  local first = redis.call("ZRANGE", sched, 0, 0, "WITHSCORES")
  if first[2] then
    local at = tonumber(first[2])
    if next_due == nil or at < next_due then next_due = at end
  end
end
if next_due then out[1] = math.max(0, next_due - now) end
return out
`,
});

// KEYS[1] active, KEYS[2] status:completed, KEYS[3] status:failed, KEYS[4] status:cancelled,
//   then pending(type) and scheduled(type) of each type the runs are of, then the runs' records;
//   all in one shard
// ARGV[1] ready channel, ARGV[2] done channel prefix, ARGV[3] index cap, ARGV[4] shard index,
//   then per run 7 values: refcode, lease token, kind (ok|retry|fail|release), result JSON or
//   error, retry delay ms, index in KEYS of its record, index in KEYS of its type's pending list
//   (its scheduled set follows it)
// Closes runs whose lease token still matches. A cancel request wins over any outcome; `retry`
// becomes `failed` once attempts are used up; `release` hands the task back (front of pending,
// the attempt not counted).
// Returns per run: the task's new status, or "lost" when the lease was not this run's.
const FINISH = defineScript({
  name: "tasks.finish",
  lua: NOW_LUA + TERMINAL + `
local ready, done, cap, shard = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local out = {}
for i = 5, #ARGV, 7 do
  local ref, token, kind, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local rkey = KEYS[tonumber(ARGV[i + 5])]
  local pending = KEYS[tonumber(ARGV[i + 6])]
  local sched = KEYS[tonumber(ARGV[i + 6]) + 1]
  local f = redis.call("HMGET", rkey, "lease", "cancel", "type", "attempts", "max_attempts",
    "ttl_ms", "failed_ttl_ms")
  if f[1] ~= token then
    table.insert(out, "lost")
  else
    redis.call("ZREM", KEYS[1], ref)
    local status
    if f[2] == "1" then
      status = "cancelled"
      terminal(rkey, ref, status, KEYS[4], f[6], done)
    elseif kind == "ok" then
      status = "completed"
      terminal(rkey, ref, status, KEYS[2], f[6], done, "result", payload, "progress", 1)
    elseif kind == "release" then
      status = "queued"
      redis.call("HSET", rkey, "status", status, "attempts", tonumber(f[4]) - 1,
        "updated_at", now, "ready_at", now, "lease", "")
      redis.call("LPUSH", pending, ref)
      redis.call("PUBLISH", ready, f[3] .. ":" .. shard)
    elseif kind == "retry" and tonumber(f[4]) < tonumber(f[5]) then
      status = "queued"
      local due = now + tonumber(ARGV[i + 4])
      redis.call("HSET", rkey, "status", status, "error", payload, "updated_at", now,
        "ready_at", due, "lease", "")
      if due > now then
        redis.call("ZADD", sched, due, ref)
      else
        redis.call("RPUSH", pending, ref)
        redis.call("PUBLISH", ready, f[3] .. ":" .. shard)
      end
    else
      status = "failed"
      terminal(rkey, ref, status, KEYS[3], f[7], done, "error", payload)
    end
    table.insert(out, status)
  end
end
trim(cap, KEYS[2], KEYS[3], KEYS[4])
return out
`,
});

// KEYS[1] active, then the runs' records; all in one shard
// ARGV[1] lease ms, then pairs: refcode, lease token (the i-th pair's record is KEYS[1 + i])
// Extends the leases still held by these tokens.
// Returns {lost refcodes, refcodes asked to cancel}
const RENEW = defineScript({
  name: "tasks.renew",
  lua: NOW_LUA + `
local lost, cancel = {}, {}
local until_ms = now + tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  local ref = ARGV[i]
  local f = redis.call("HMGET", KEYS[1 + i / 2], "lease", "cancel")
  if f[1] ~= ARGV[i + 1] then
    table.insert(lost, ref)
  else
    redis.call("ZADD", KEYS[1], until_ms, ref)
    if f[2] == "1" then table.insert(cancel, ref) end
  end
end
return {lost, cancel}
`,
});

// KEYS[1] active
// ARGV[1] most refcodes
// Returns the refcodes whose lease expired (server clock), oldest expiry first.
const EXPIRED = defineScript({
  name: "tasks.expired",
  lua: NOW_LUA + `
return redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", now, "LIMIT", 0, tonumber(ARGV[1]))
`,
});

// KEYS[1] active, KEYS[2] status:failed, KEYS[3] status:cancelled, then pending(type) of each
//   type named in ARGV, then the records of the refcodes named in ARGV; all in one shard
// ARGV[1] ready channel, ARGV[2] done channel prefix, ARGV[3] index cap, ARGV[4] error recorded
//   when attempts are used up, ARGV[5] shard index, ARGV[6] n, the number of types, then n type
//   names, then refcodes (from `tasks.expired`)
// Takes back those of the tasks whose lease is still expired: to the front of pending, or
// `failed` when that was the last attempt, or `cancelled` when a cancel was asked. A task of a
// type not named is left for a process that knows it, its expiry pushed back a minute so it does
// not hide the others.
// Returns per task: type, new status
const RECLAIM = defineScript({
  name: "tasks.reclaim",
  lua: NOW_LUA + TERMINAL + `
local ready, done, cap, shard = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[5]
local n = tonumber(ARGV[6])
local pending = {}
for i = 1, n do pending[ARGV[6 + i]] = KEYS[3 + i] end
local out = {}
for i = 7 + n, #ARGV do
  local ref = ARGV[i]
  local rkey = KEYS[3 + n + (i - 6 - n)]
  local score = redis.call("ZSCORE", KEYS[1], ref)
  if score and tonumber(score) <= now then
    local f = redis.call("HMGET", rkey, "status", "type", "cancel", "attempts", "max_attempts",
      "ttl_ms", "failed_ttl_ms")
    if f[1] ~= "in_progress" then
      redis.call("ZREM", KEYS[1], ref)
    elseif not pending[f[2]] and f[3] ~= "1" and tonumber(f[4]) < tonumber(f[5]) then
      redis.call("ZADD", KEYS[1], now + 60000, ref)
    else
      redis.call("ZREM", KEYS[1], ref)
      local status
      if f[3] == "1" then
        status = "cancelled"
        terminal(rkey, ref, status, KEYS[3], f[6], done)
      elseif tonumber(f[4]) >= tonumber(f[5]) then
        status = "failed"
        terminal(rkey, ref, status, KEYS[2], f[7], done, "error", ARGV[4])
      else
        status = "queued"
        redis.call("HSET", rkey, "status", status, "updated_at", now, "ready_at", now,
          "lease", "")
        redis.call("LPUSH", pending[f[2]], ref)
        redis.call("PUBLISH", ready, f[2] .. ":" .. shard)
      end
      table.insert(out, f[2])
      table.insert(out, status)
    end
  end
end
trim(cap, KEYS[2], KEYS[3])
return out
`,
});

// KEYS[1] record, KEYS[2] status:cancelled, KEYS[3] scheduled(its type); all in its shard
// ARGV[1] cancel channel, ARGV[2] done channel prefix, ARGV[3] index cap, ARGV[4] refcode
// A queued task becomes `cancelled` at once (it never starts; a pending list keeps its refcode
// until a claim pops and skips it); a running one is flagged and its worker told on the cancel
// channel (it ends `cancelled` when its run stops).
// Returns {"missing"} or {"terminal"|"cancelled"|"cancelling", the record as HGETALL}
const CANCEL = defineScript({
  name: "tasks.cancel",
  lua: NOW_LUA + TERMINAL + `
local f = redis.call("HMGET", KEYS[1], "status", "ttl_ms")
local ref = ARGV[4]
local outcome
if not f[1] then
  return {"missing"}
elseif f[1] == "queued" then
  outcome = "cancelled"
  redis.call("ZREM", KEYS[3], ref)
  terminal(KEYS[1], ref, "cancelled", KEYS[2], f[2], ARGV[2])
  trim(tonumber(ARGV[3]), KEYS[2])
elseif f[1] == "in_progress" then
  outcome = "cancelling"
  redis.call("HSET", KEYS[1], "cancel", 1, "updated_at", now)
  redis.call("PUBLISH", ARGV[1], ref)
else
  outcome = "terminal"
end
return {outcome, redis.call("HGETALL", KEYS[1])}
`,
});

// KEYS[1] record, KEYS[2] status:failed, KEYS[3] pending(its type); all in its shard
// ARGV[1] ready channel, ARGV[2] refcode, ARGV[3] ready message (`<type>:<shard>`)
// Runs a failed task again: attempts reset, error cleared, kept until it ends again.
// Returns {"missing"} or {"queued"|"state", the record as HGETALL}
const RETRY = defineScript({
  name: "tasks.retry",
  lua: NOW_LUA + `
local f = redis.call("HMGET", KEYS[1], "status")
if not f[1] then return {"missing"} end
if f[1] ~= "failed" then return {"state", redis.call("HGETALL", KEYS[1])} end
redis.call("HSET", KEYS[1], "status", "queued", "attempts", 0, "updated_at", now,
  "ready_at", now)
redis.call("HDEL", KEYS[1], "error", "result", "progress", "finished_at", "started_at")
redis.call("PERSIST", KEYS[1])
redis.call("RPUSH", KEYS[3], ARGV[2])
redis.call("ZREM", KEYS[2], ARGV[2])
redis.call("PUBLISH", ARGV[1], ARGV[3])
return {"queued", redis.call("HGETALL", KEYS[1])}
`,
});

// KEYS[1] record
// ARGV[1] lease token, ARGV[2] progress (0..1)
// Records progress if the run still holds the lease.
// Returns 1 when written, 0 otherwise
const PROGRESS = defineScript({
  name: "tasks.progress",
  lua: NOW_LUA + `
if redis.call("HGET", KEYS[1], "lease") ~= ARGV[1] then return 0 end
redis.call("HSET", KEYS[1], "progress", ARGV[2], "updated_at", now)
return 1
`,
});

/** The outcome of `cancel` and `retry`: what happened and the record afterwards. */
export interface ChangeResult {
  outcome: "missing" | "terminal" | "cancelled" | "cancelling" | "queued" | "state";
  record: TaskRecord | null;
}

function _change(reply: Reply): ChangeResult {
  const [outcome, hash] = reply as [ChangeResult["outcome"], Reply];
  return { outcome, record: outcome === "missing" ? null : toHash(hash) };
}

/**
 * The task operations on a Store: what clients, workers and the recoverer call. Each call that
 * names tasks goes to their shards (one script per shard, sent together: one round trip on one
 * server, one per node on a cluster, in parallel).
 *
 * @example
 * ```ts
 * const broker = new TaskBroker(rt.store, taskKeys(rt.config.keyPrefix));
 * const { tasks } = await broker.claim(0, [["sleep", 5]], 10_000, "w1.1", "w1");
 * ```
 */
export class TaskBroker {
  /**
   * @param store the store
   * @param keys the keys of this deployment
   */
  constructor(readonly store: Store, readonly keys: TaskKeys) {}

  /**
   * Creates a task and queues it (or schedules it after `delayMs`) in one atomic step, in the
   * shard its refcode picks (the idempotency key, if any, must be in the same shard).
   *
   * @param entry the task
   * @returns `created`, or `existing`/`conflict` for a reused idempotency key, with the refcode
   */
  async enqueue(
    entry: EnqueueEntry,
  ): Promise<{ outcome: "created" | "existing" | "conflict"; refcode: string }> {
    const k = this.keys;
    const shard = k.shardOf(entry.refcode);
    const keys = [
      shard.record(entry.refcode),
      shard.pending(entry.type),
      shard.scheduled(entry.type),
    ];
    if (entry.idempotency) keys.push(shard.idempotency(entry.idempotency.keyHash));
    const [outcome, refcode] = await this.store.eval(ENQUEUE, keys, [
      entry.refcode,
      entry.type,
      entry.input,
      entry.maxAttempts,
      entry.ttlMs,
      entry.failedTtlMs,
      Math.max(0, Math.round(entry.delayMs)),
      k.readyChannel,
      entry.idempotency?.fingerprint ?? "",
      entry.idempotency?.ttlMs ?? 0,
      `${entry.type}:${shard.index}`,
    ]) as [string, string];
    return { outcome: outcome as "created" | "existing" | "conflict", refcode };
  }

  /**
   * Starts up to the asked number of tasks per type from one shard, moving its due retries to
   * pending first.
   *
   * @param shard the shard's index
   * @param wants `[type, how many]`, in the order to serve them (0: only move due tasks)
   * @param leaseMs lease length
   * @param tokenPrefix unique per call (worker id + sequence)
   * @param worker the worker's id, recorded on the task
   * @returns the started tasks, the types whose pending list is not empty afterwards, and the
   *   time until the next scheduled task of these types in this shard is due (or null)
   */
  async claim(
    shard: number,
    wants: readonly (readonly [string, number])[],
    leaseMs: number,
    tokenPrefix: string,
    worker: string,
  ): Promise<{ tasks: ClaimedTask[]; more: string[]; nextDueMs: number | null }> {
    const s = this.keys.shards[shard];
    const keys = [s.active];
    for (const [type] of wants) keys.push(s.pending(type), s.scheduled(type));
    const reply = await this.store.eval(CLAIM, keys, [
      s.recordPrefix,
      leaseMs,
      tokenPrefix,
      worker,
      ...wants.map(([, n]) => n),
    ]) as Reply[];
    const tasks: ClaimedTask[] = [];
    for (let i = 2; i + 5 < reply.length; i += 6) {
      const attempt = Number(reply[i + 3]);
      tasks.push({
        refcode: String(reply[i]),
        type: String(reply[i + 1]),
        input: String(reply[i + 2]),
        attempt,
        maxAttempts: Number(reply[i + 4]),
        readyAt: Number(reply[i + 5]),
        token: `${tokenPrefix}/${attempt}`,
      });
    }
    const more = (reply[1] as number[]).map((i) => wants[Number(i) - 1][0]);
    const next = Number(reply[0]);
    return { tasks, more, nextDueMs: next >= 0 ? next : null };
  }

  /**
   * Closes runs: completed, retried, failed or handed back, unless a cancel was asked.
   *
   * @param entries the runs
   * @returns each task's new status, or `lost` when its lease was no longer this run's
   */
  async finish(entries: readonly FinishEntry[]): Promise<FinishResult[]> {
    const k = this.keys;
    const out: FinishResult[] = new Array(entries.length);
    await Promise.all([..._byShard(k, entries, (e) => e.refcode)].map(async ([index, group]) => {
      const s = k.shards[index];
      const keys = [s.active, s.status("completed"), s.status("failed"), s.status("cancelled")];
      const typeAt = new Map<string, number>();
      for (const { entry } of group) {
        if (typeAt.has(entry.type)) continue;
        typeAt.set(entry.type, keys.length + 1);
        keys.push(s.pending(entry.type), s.scheduled(entry.type));
      }
      const args: (string | number)[] = [k.readyChannel, k.donePrefix, INDEX_CAP, index];
      for (const { entry: { refcode, token, outcome, type } } of group) {
        const payload = outcome.kind === "ok"
          ? outcome.result
          : outcome.kind === "release"
          ? ""
          : outcome.error;
        const delay = outcome.kind === "retry" ? Math.max(0, Math.round(outcome.delayMs)) : 0;
        keys.push(s.record(refcode));
        args.push(refcode, token, outcome.kind, payload, delay, keys.length, typeAt.get(type)!);
      }
      const results = await this.store.eval(FINISH, keys, args) as FinishResult[];
      group.forEach(({ at }, i) => (out[at] = results[i]));
    }));
    return out;
  }

  /**
   * Extends leases.
   *
   * @param leases `[refcode, token]` of the runs to extend
   * @param leaseMs new lease length from now
   * @returns runs whose lease is gone, and runs asked to cancel
   */
  async renew(
    leases: readonly (readonly [string, string])[],
    leaseMs: number,
  ): Promise<{ lost: string[]; cancel: string[] }> {
    const k = this.keys;
    const lost: string[] = [], cancel: string[] = [];
    await Promise.all(
      [..._byShard(k, leases, ([refcode]) => refcode)].map(async ([index, group]) => {
        const s = k.shards[index];
        const [l, c] = await this.store.eval(
          RENEW,
          [s.active, ...group.map(({ entry: [refcode] }) => s.record(refcode))],
          [leaseMs, ...group.flatMap(({ entry }) => entry)],
        ) as [string[], string[]];
        lost.push(...l);
        cancel.push(...c);
      }),
    );
    return { lost, cancel };
  }

  /**
   * Takes back tasks whose lease expired, in every shard.
   *
   * @param types the task types this process knows (their pending lists receive the tasks)
   * @returns `[type, new status]` of each task taken back
   */
  async reclaim(types: readonly string[]): Promise<[string, JobStatus][]> {
    const k = this.keys;
    const out: [string, JobStatus][] = [];
    await Promise.all(k.shards.map(async (s) => {
      const expired = await this.store.eval(EXPIRED, [s.active], [RECLAIM_BATCH]) as string[];
      if (expired.length === 0) return;
      const reply = await this.store.eval(RECLAIM, [
        s.active,
        s.status("failed"),
        s.status("cancelled"),
        ...types.map((t) => s.pending(t)),
        ...expired.map((ref) => s.record(ref)),
      ], [
        k.readyChannel,
        k.donePrefix,
        INDEX_CAP,
        LEASE_EXPIRED_ERROR,
        s.index,
        types.length,
        ...types,
        ...expired,
      ]) as string[];
      for (let i = 0; i + 1 < reply.length; i += 2) {
        out.push([reply[i], reply[i + 1] as JobStatus]);
      }
    }));
    return out;
  }

  /**
   * Cancels a task: at once when queued, through its worker when running.
   *
   * @param refcode the task
   * @returns what happened and the record afterwards
   */
  cancel(refcode: string): Promise<ChangeResult> {
    const k = this.keys;
    return this.#change(refcode, CANCEL, (s, type) => [
      [s.record(refcode), s.status("cancelled"), s.scheduled(type)],
      [k.cancelChannel, k.donePrefix, INDEX_CAP, refcode],
    ]);
  }

  /**
   * Queues a failed task again with its attempts reset.
   *
   * @param refcode the task
   * @returns what happened and the record afterwards
   */
  retry(refcode: string): Promise<ChangeResult> {
    const k = this.keys;
    return this.#change(refcode, RETRY, (s, type) => [
      [s.record(refcode), s.status("failed"), s.pending(type)],
      [k.readyChannel, refcode, `${type}:${s.index}`],
    ]);
  }

  /**
   * Runs a script that changes one task's status, with the keys and arguments it needs once the
   * task's shard and type are known (the type names the per-type list or set it may touch; a
   * task's type never changes).
   */
  async #change(
    refcode: string,
    script: Script,
    args: (s: ShardKeys, type: string) => [string[], (string | number)[]],
  ): Promise<ChangeResult> {
    const s = this.keys.shardOf(refcode);
    const type = await this.store.command(["HGET", s.record(refcode), "type"]);
    if (type === null) return { outcome: "missing", record: null };
    const [keys, argv] = args(s, String(type));
    return _change(await this.store.eval(script, keys, argv));
  }

  /**
   * Records a run's progress if it still holds its lease.
   *
   * @param refcode the task
   * @param token the run's lease token
   * @param fraction 0..1
   * @returns whether it was written
   */
  async progress(refcode: string, token: string, fraction: number): Promise<boolean> {
    return await this.store.eval(PROGRESS, [this.keys.record(refcode)], [token, fraction]) === 1;
  }

  /**
   * Reads a task.
   *
   * @param refcode the task
   * @returns its record, or null when unknown or expired
   */
  async get(refcode: string): Promise<TaskRecord | null> {
    const hash = toHash(await this.store.command(["HGETALL", this.keys.record(refcode)]));
    return hash.status ? hash : null;
  }

  /**
   * Lists the newest tasks in one status, over every shard. Terminal statuses have an index per
   * shard; queued and running tasks are read from the queues themselves (the newest
   * {@link LIVE_SCAN} of each), which keeps the hot path free of index writes.
   *
   * @param status the status
   * @param limit most tasks returned
   * @param options `type` filter; `types` whose queues hold queued tasks
   * @returns records with their refcodes, newest first
   */
  async list(
    status: JobStatus,
    limit: number,
    options: { type?: string; types: readonly string[] },
  ): Promise<(TaskRecord & { refcode: string })[]> {
    if (status === "queued" || status === "in_progress") {
      return await this.#listLive(status, limit, options);
    }
    const { type } = options;
    const shards = this.keys.shards;
    const out: (TaskRecord & { refcode: string })[] = [];
    // Each shard's index is read a page at a time, newest first; the pages are merged by score,
    // and a shard's next page is read only while the merge may still need it.
    const page = type ? Math.max(100, limit * 4) : limit;
    const cursors = shards.map(() => ({ start: 0, done: false }));
    const heads: { ref: string; score: number; shard: number }[] = [];
    while (out.length < limit) {
      const reading = shards.map((_, i) => i).filter((i) =>
        !cursors[i].done && !heads.some((h) => h.shard === i)
      );
      const replies = await this.store.pipeline(reading.map((i) => [
        "ZREVRANGE",
        shards[i].status(status),
        cursors[i].start,
        cursors[i].start + page - 1,
        "WITHSCORES",
      ]));
      reading.forEach((i, n) => {
        const flat = replies[n] as string[];
        cursors[i].start += page;
        if (flat.length < 2 * page) cursors[i].done = true;
        for (let j = 0; j + 1 < flat.length; j += 2) {
          heads.push({ ref: flat[j], score: Number(flat[j + 1]), shard: i });
        }
      });
      if (heads.length === 0) break;
      heads.sort((a, b) => b.score - a.score);
      // Safe to take entries down to the newest "last entry read" of a shard with more pages.
      let floor = -Infinity;
      for (let i = 0; i < shards.length; i++) {
        if (cursors[i].done) continue;
        const mine = heads.filter((h) => h.shard === i);
        if (mine.length) floor = Math.max(floor, mine[mine.length - 1].score);
      }
      const take = heads.filter((h) => h.score >= floor);
      heads.splice(0, take.length);
      const records = await this.#records(take.map((h) => h.ref));
      const gone = new Map<number, string[]>();
      records.forEach((record, i) => {
        if (!record.status) {
          const list = gone.get(take[i].shard) ?? [];
          list.push(take[i].ref);
          gone.set(take[i].shard, list);
        } else if (record.status === status && (!type || record.type === type)) {
          if (out.length < limit) out.push(record);
        }
      });
      // Records expire on their own; drop what they left behind in the indexes.
      if (gone.size) {
        await this.store.pipeline(
          [...gone].map(([i, refs]) => ["ZREM", shards[i].status(status), ...refs]),
        );
      }
      if (take.length === 0 && cursors.every((c) => c.done)) break;
    }
    return out;
  }

  async #records(refs: readonly string[]): Promise<(TaskRecord & { refcode: string })[]> {
    if (refs.length === 0) return [];
    const hashes = await this.store.pipeline(
      refs.map((ref) => ["HGETALL", this.keys.record(ref)]),
    );
    return refs.map((refcode, i) => ({ ...toHash(hashes[i]), refcode }));
  }

  async #listLive(
    status: "queued" | "in_progress",
    limit: number,
    options: { type?: string; types: readonly string[] },
  ): Promise<(TaskRecord & { refcode: string })[]> {
    const shards = this.keys.shards;
    let refs: string[];
    if (status === "in_progress") {
      const replies = await this.store.pipeline(
        shards.map((s) => ["ZREVRANGE", s.active, 0, LIVE_SCAN - 1]),
      );
      refs = (replies as string[][]).flat();
    } else {
      const types = options.type ? [options.type] : options.types;
      const replies = await this.store.pipeline(shards.flatMap((s) =>
        types.flatMap((t) => [
          ["LRANGE", s.pending(t), -LIVE_SCAN, -1],
          ["ZRANGE", s.scheduled(t), 0, LIVE_SCAN - 1],
        ])
      ));
      refs = [...new Set((replies as string[][]).flat())];
    }
    const field = status === "in_progress" ? "started_at" : "updated_at";
    return (await this.#records(refs))
      .filter((r) => r.status === status && (!options.type || r.type === options.type))
      .sort((a, b) => Number(b[field]) - Number(a[field]))
      .slice(0, limit);
  }

  /**
   * Counts tasks waiting per type (pending plus scheduled, over every shard).
   *
   * @param types the types
   * @returns the count per type
   */
  async depth(types: readonly string[]): Promise<Map<string, number>> {
    const shards = this.keys.shards;
    const replies = await this.store.pipeline(
      types.flatMap((t) =>
        shards.flatMap((s) => [["LLEN", s.pending(t)], ["ZCARD", s.scheduled(t)]])
      ),
    );
    const per = 2 * shards.length;
    return new Map(types.map((t, i) => [
      t,
      replies.slice(i * per, (i + 1) * per).reduce((a: number, b) => a + Number(b), 0),
    ]));
  }
}

/** Groups items by their task's shard, keeping each item's position. */
function _byShard<T>(
  keys: TaskKeys,
  items: readonly T[],
  refcode: (item: T) => string,
): Map<number, { entry: T; at: number }[]> {
  const out = new Map<number, { entry: T; at: number }[]>();
  items.forEach((entry, at) => {
    const index = keys.shardOf(refcode(entry)).index;
    let group = out.get(index);
    if (!group) out.set(index, group = []);
    group.push({ entry, at });
  });
  return out;
}
