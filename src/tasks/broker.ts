/**
 * @module Every state change of a task, each one atomic: a Lua script (run by Redis and by the
 * embedded store alike) under a header listing KEYS, ARGV and the return value.
 *
 * Layout (see `keys.ts`): a hash per task; per type a `pending` list (ready, FIFO) and a
 * `scheduled` sorted set (retries and delayed starts, by due time); one `active` sorted set of
 * running tasks by lease expiry; one sorted set per status for listings. Times are the Redis
 * server's clock (`TIME`), so leases never depend on the clocks of worker machines.
 *
 * A cancelled task that is still in a `pending` list stays there and is skipped when popped
 * (cancel is O(1) instead of an O(n) LREM); every pop checks that the record is still `queued`.
 */
import { defineScript, type Reply, type Store, toHash } from "../infra/store.ts";
import type { TaskKeys } from "./keys.ts";
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
//   (optional)
// ARGV[1] refcode, ARGV[2] type, ARGV[3] input JSON, ARGV[4] max attempts, ARGV[5] TTL ms after
//   completed/cancelled, ARGV[6] TTL ms after failed, ARGV[7] delay ms, ARGV[8] ready channel,
//   ARGV[9] request fingerprint, ARGV[10] idempotency TTL ms
// Returns {"created"|"existing"|"conflict", refcode}: existing/conflict name the key's task.
// Workers are told only when the list was empty: a longer list means an earlier push told them
// already and they are still claiming (a claim that fills every free slot claims again). A
// delayed task tells them when it is the type's earliest: they sleep until the earliest one.
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
    redis.call("PUBLISH", ARGV[8], ARGV[2])
  end
else
  if redis.call("RPUSH", KEYS[2], ARGV[1]) == 1 then redis.call("PUBLISH", ARGV[8], ARGV[2]) end
end
return {"created", ARGV[1]}
`,
});

// KEYS[1] active, then for each type i: KEYS[2i] pending(type), KEYS[2i+1] scheduled(type)
// ARGV[1] keys base, ARGV[2] lease ms, ARGV[3] lease token prefix, ARGV[4] worker id, then for
//   each type i: ARGV[4+i] how many to claim
// Moves due scheduled tasks to pending, then pops and starts up to the asked number per type.
// Returns {ms until the next scheduled task is due or -1, then per claimed task: refcode, type,
//   input, attempt, max attempts, ready_at}
const CLAIM = defineScript({
  name: "tasks.claim",
  lua: NOW_LUA + `
local out = {-1}
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
    local rkey = ARGV[1] .. "t:" .. ref
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

// KEYS[1] active, KEYS[2] status:completed, KEYS[3] status:failed, KEYS[4] status:cancelled
// ARGV[1] keys base, ARGV[2] ready channel, ARGV[3] done channel prefix, ARGV[4] index cap,
//   then per run 5 values: refcode, lease token, kind (ok|retry|fail|release), result JSON or error,
//   retry delay ms
// Closes runs whose lease token still matches. A cancel request wins over any outcome; `retry`
// becomes `failed` once attempts are used up; `release` hands the task back (front of pending,
// the attempt not counted).
// Returns per run: the task's new status, or "lost" when the lease was not this run's.
const FINISH = defineScript({
  name: "tasks.finish",
  lua: NOW_LUA + TERMINAL + `
local base, ready, done, cap = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local out = {}
for i = 5, #ARGV, 5 do
  local ref, token, kind, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local rkey = base .. "t:" .. ref
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
      redis.call("LPUSH", base .. "pending:" .. f[3], ref)
      redis.call("PUBLISH", ready, f[3])
    elseif kind == "retry" and tonumber(f[4]) < tonumber(f[5]) then
      status = "queued"
      local due = now + tonumber(ARGV[i + 4])
      redis.call("HSET", rkey, "status", status, "error", payload, "updated_at", now,
        "ready_at", due, "lease", "")
      if due > now then
        redis.call("ZADD", base .. "scheduled:" .. f[3], due, ref)
      else
        redis.call("RPUSH", base .. "pending:" .. f[3], ref)
        redis.call("PUBLISH", ready, f[3])
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

// KEYS[1] active
// ARGV[1] keys base, ARGV[2] lease ms, then pairs: refcode, lease token
// Extends the leases still held by these tokens.
// Returns {lost refcodes, refcodes asked to cancel}
const RENEW = defineScript({
  name: "tasks.renew",
  lua: NOW_LUA + `
local lost, cancel = {}, {}
local until_ms = now + tonumber(ARGV[2])
for i = 3, #ARGV, 2 do
  local ref = ARGV[i]
  local f = redis.call("HMGET", ARGV[1] .. "t:" .. ref, "lease", "cancel")
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

// KEYS[1] active, KEYS[2] status:failed, KEYS[3] status:cancelled
// ARGV[1] keys base, ARGV[2] ready channel, ARGV[3] done channel prefix, ARGV[4] index cap,
//   ARGV[5] most tasks to handle, ARGV[6] error recorded when attempts are used up
// Takes back tasks whose lease expired: to the front of pending, or `failed` when that was the
// last attempt, or `cancelled` when a cancel was asked.
// Returns per task: type, new status
const RECLAIM = defineScript({
  name: "tasks.reclaim",
  lua: NOW_LUA + TERMINAL + `
local base, ready, done, cap = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local out = {}
local expired = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", now, "LIMIT", 0, tonumber(ARGV[5]))
for _, ref in ipairs(expired) do
  redis.call("ZREM", KEYS[1], ref)
  local rkey = base .. "t:" .. ref
  local f = redis.call("HMGET", rkey, "status", "type", "cancel", "attempts", "max_attempts",
    "ttl_ms", "failed_ttl_ms")
  if f[1] == "in_progress" then
    local status
    if f[3] == "1" then
      status = "cancelled"
      terminal(rkey, ref, status, KEYS[3], f[6], done)
    elseif tonumber(f[4]) >= tonumber(f[5]) then
      status = "failed"
      terminal(rkey, ref, status, KEYS[2], f[7], done, "error", ARGV[6])
    else
      status = "queued"
      redis.call("HSET", rkey, "status", status, "updated_at", now, "ready_at", now, "lease", "")
      redis.call("LPUSH", base .. "pending:" .. f[2], ref)
      redis.call("PUBLISH", ready, f[2])
    end
    table.insert(out, f[2])
    table.insert(out, status)
  end
end
trim(cap, KEYS[2], KEYS[3])
return out
`,
});

// KEYS[1] record, KEYS[2] status:cancelled
// ARGV[1] keys base, ARGV[2] cancel channel, ARGV[3] done channel prefix, ARGV[4] index cap,
//   ARGV[5] refcode
// A queued task becomes `cancelled` at once (it never starts); a running one is flagged and its
// worker told on the cancel channel (it ends `cancelled` when its run stops).
// Returns {"missing"} or {"terminal"|"cancelled"|"cancelling", the record as HGETALL}
const CANCEL = defineScript({
  name: "tasks.cancel",
  lua: NOW_LUA + TERMINAL + `
local f = redis.call("HMGET", KEYS[1], "status", "type", "ttl_ms")
local ref = ARGV[5]
local outcome
if not f[1] then
  return {"missing"}
elseif f[1] == "queued" then
  outcome = "cancelled"
  redis.call("ZREM", ARGV[1] .. "scheduled:" .. f[2], ref)
  terminal(KEYS[1], ref, "cancelled", KEYS[2], f[3], ARGV[3])
  trim(tonumber(ARGV[4]), KEYS[2])
elseif f[1] == "in_progress" then
  outcome = "cancelling"
  redis.call("HSET", KEYS[1], "cancel", 1, "updated_at", now)
  redis.call("PUBLISH", ARGV[2], ref)
else
  outcome = "terminal"
end
return {outcome, redis.call("HGETALL", KEYS[1])}
`,
});

// KEYS[1] record, KEYS[2] status:failed
// ARGV[1] keys base, ARGV[2] ready channel, ARGV[3] refcode
// Runs a failed task again: attempts reset, error cleared, kept until it ends again.
// Returns {"missing"} or {"queued"|"state", the record as HGETALL}
const RETRY = defineScript({
  name: "tasks.retry",
  lua: NOW_LUA + `
local f = redis.call("HMGET", KEYS[1], "status", "type")
if not f[1] then return {"missing"} end
if f[1] ~= "failed" then return {"state", redis.call("HGETALL", KEYS[1])} end
redis.call("HSET", KEYS[1], "status", "queued", "attempts", 0, "updated_at", now,
  "ready_at", now)
redis.call("HDEL", KEYS[1], "error", "result", "progress", "finished_at", "started_at")
redis.call("PERSIST", KEYS[1])
redis.call("RPUSH", ARGV[1] .. "pending:" .. f[2], ARGV[3])
redis.call("ZREM", KEYS[2], ARGV[3])
redis.call("PUBLISH", ARGV[2], f[2])
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
 * The task operations on a Store: what clients, workers and the recoverer call.
 *
 * @example
 * ```ts
 * const broker = new TaskBroker(rt.store, taskKeys(rt.config.keyPrefix));
 * const { tasks } = await broker.claim([["sleep", 5]], 10_000, "w1.1", "w1");
 * ```
 */
export class TaskBroker {
  /**
   * @param store the store
   * @param keys the keys of this deployment
   */
  constructor(readonly store: Store, readonly keys: TaskKeys) {}

  /**
   * Creates a task and queues it (or schedules it after `delayMs`) in one atomic step.
   *
   * @param entry the task
   * @returns `created`, or `existing`/`conflict` for a reused idempotency key, with the refcode
   */
  async enqueue(
    entry: EnqueueEntry,
  ): Promise<{ outcome: "created" | "existing" | "conflict"; refcode: string }> {
    const k = this.keys;
    const keys = [k.record(entry.refcode), k.pending(entry.type), k.scheduled(entry.type)];
    if (entry.idempotency) keys.push(k.idempotency(entry.idempotency.keyHash));
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
    ]) as [string, string];
    return { outcome: outcome as "created" | "existing" | "conflict", refcode };
  }

  /**
   * Starts up to the asked number of tasks per type, moving due retries to pending first.
   *
   * @param wants `[type, how many]`, in the order to serve them
   * @param leaseMs lease length
   * @param tokenPrefix unique per call (worker id + sequence)
   * @param worker the worker's id, recorded on the task
   * @returns the started tasks and the time until the next scheduled one is due (or null)
   */
  async claim(
    wants: readonly (readonly [string, number])[],
    leaseMs: number,
    tokenPrefix: string,
    worker: string,
  ): Promise<{ tasks: ClaimedTask[]; nextDueMs: number | null }> {
    const k = this.keys;
    const keys = [k.active];
    for (const [type] of wants) keys.push(k.pending(type), k.scheduled(type));
    const reply = await this.store.eval(CLAIM, keys, [
      k.base,
      leaseMs,
      tokenPrefix,
      worker,
      ...wants.map(([, n]) => n),
    ]) as Reply[];
    const tasks: ClaimedTask[] = [];
    for (let i = 1; i + 5 < reply.length; i += 6) {
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
    const next = Number(reply[0]);
    return { tasks, nextDueMs: next >= 0 ? next : null };
  }

  /**
   * Closes runs: completed, retried, failed or handed back, unless a cancel was asked.
   *
   * @param entries the runs
   * @returns each task's new status, or `lost` when its lease was no longer this run's
   */
  async finish(entries: readonly FinishEntry[]): Promise<FinishResult[]> {
    const k = this.keys;
    const args: (string | number)[] = [k.base, k.readyChannel, k.donePrefix, INDEX_CAP];
    for (const { refcode, token, outcome } of entries) {
      const payload = outcome.kind === "ok"
        ? outcome.result
        : outcome.kind === "release"
        ? ""
        : outcome.error;
      const delay = outcome.kind === "retry" ? Math.max(0, Math.round(outcome.delayMs)) : 0;
      args.push(refcode, token, outcome.kind, payload, delay);
    }
    return await this.store.eval(FINISH, [
      k.active,
      k.status("completed"),
      k.status("failed"),
      k.status("cancelled"),
    ], args) as FinishResult[];
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
    if (leases.length === 0) return { lost: [], cancel: [] };
    const [lost, cancel] = await this.store.eval(
      RENEW,
      [this.keys.active],
      [this.keys.base, leaseMs, ...leases.flat()],
    ) as [string[], string[]];
    return { lost, cancel };
  }

  /**
   * Takes back tasks whose lease expired.
   *
   * @returns `[type, new status]` of each task taken back
   */
  async reclaim(): Promise<[string, JobStatus][]> {
    const k = this.keys;
    const reply = await this.store.eval(RECLAIM, [
      k.active,
      k.status("failed"),
      k.status("cancelled"),
    ], [
      k.base,
      k.readyChannel,
      k.donePrefix,
      INDEX_CAP,
      RECLAIM_BATCH,
      LEASE_EXPIRED_ERROR,
    ]) as string[];
    const out: [string, JobStatus][] = [];
    for (let i = 0; i + 1 < reply.length; i += 2) out.push([reply[i], reply[i + 1] as JobStatus]);
    return out;
  }

  /**
   * Cancels a task: at once when queued, through its worker when running.
   *
   * @param refcode the task
   * @returns what happened and the record afterwards
   */
  async cancel(refcode: string): Promise<ChangeResult> {
    const k = this.keys;
    return _change(
      await this.store.eval(
        CANCEL,
        [k.record(refcode), k.status("cancelled")],
        [k.base, k.cancelChannel, k.donePrefix, INDEX_CAP, refcode],
      ),
    );
  }

  /**
   * Queues a failed task again with its attempts reset.
   *
   * @param refcode the task
   * @returns what happened and the record afterwards
   */
  async retry(refcode: string): Promise<ChangeResult> {
    const k = this.keys;
    return _change(
      await this.store.eval(
        RETRY,
        [k.record(refcode), k.status("failed")],
        [k.base, k.readyChannel, refcode],
      ),
    );
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
   * Lists the newest tasks in one status. Terminal statuses have an index each; queued and
   * running tasks are read from the queues themselves (the newest {@link LIVE_SCAN} of each),
   * which keeps the hot path free of index writes.
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
    const idx = this.keys.status(status);
    const out: (TaskRecord & { refcode: string })[] = [];
    const page = type ? Math.max(100, limit * 4) : limit;
    for (let start = 0; out.length < limit; start += page) {
      const refs = await this.store.command(
        ["ZREVRANGE", idx, start, start + page - 1],
      ) as string[];
      if (refs.length === 0) break;
      const records = await this.#records(refs);
      const gone: string[] = [];
      records.forEach((record, i) => {
        if (!record.status) gone.push(refs[i]);
        else if (record.status === status && (!type || record.type === type)) {
          if (out.length < limit) out.push(record);
        }
      });
      // Records expire on their own; drop what they left behind in the index.
      if (gone.length) await this.store.command(["ZREM", idx, ...gone]);
      if (refs.length < page) break;
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
    const k = this.keys;
    let refs: string[];
    if (status === "in_progress") {
      refs = await this.store.command(["ZREVRANGE", k.active, 0, LIVE_SCAN - 1]) as string[];
    } else {
      const types = options.type ? [options.type] : options.types;
      const replies = await this.store.pipeline(types.flatMap((t) => [
        ["LRANGE", k.pending(t), -LIVE_SCAN, -1],
        ["ZRANGE", k.scheduled(t), 0, LIVE_SCAN - 1],
      ]));
      refs = [...new Set((replies as string[][]).flat())];
    }
    const field = status === "in_progress" ? "started_at" : "updated_at";
    return (await this.#records(refs))
      .filter((r) => r.status === status && (!options.type || r.type === options.type))
      .sort((a, b) => Number(b[field]) - Number(a[field]))
      .slice(0, limit);
  }

  /**
   * Counts tasks waiting per type (pending plus scheduled).
   *
   * @param types the types
   * @returns the count per type
   */
  async depth(types: readonly string[]): Promise<Map<string, number>> {
    const replies = await this.store.pipeline(
      types.flatMap((t) => [["LLEN", this.keys.pending(t)], ["ZCARD", this.keys.scheduled(t)]]),
    );
    return new Map(types.map((t, i) => [t, Number(replies[2 * i]) + Number(replies[2 * i + 1])]));
  }
}
