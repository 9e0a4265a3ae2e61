/**
 * @module Runs of parallel tasks in the store: create, read, claim a chunk under a lease,
 * record its result, renew leases, hand chunks back, end and cancel. Every state change is
 * one atomic script, so `worker_count` holds across processes and a late result never
 * changes an ended run.
 */
import { defineScript, type Reply, type Script, type Store, toHash } from "../infra/store.ts";
import { activeRunsKey, eventsChannel, runKeyList, runKeys } from "./keys.ts";
import { RUN_REFCODES } from "../jobs/refcode.ts";
import type { JobStatus } from "../jobs/status.ts";
import { NOW_LUA } from "../jobs/lease.ts";

/** How long an ended run stays readable, in seconds. */
export const RUN_TTL_S = 24 * 3600;

/** A run as `GET /parallel-tasks/{refcode}` shows it. */
export interface RunView {
  refcode: string;
  task_id: string;
  worker_count: number;
  status: JobStatus;
  progress: { done: number; total: number };
  result: unknown;
  error: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

/** What a claim gave this process. */
export type Claim =
  | { kind: "chunk"; taskId: string; index: number; chunk: unknown }
  | { kind: "merge"; taskId: string }
  | { kind: "full" | "empty" }
  | { kind: "gone"; status: JobStatus | "" };

/** A lease this process holds: a chunk index or `merge`, and the claim's token. */
export interface Held {
  slot: string;
  token: string;
}

/** What a new run is made of. */
export interface NewRun {
  taskId: string;
  workerCount: number;
  /** The chunks `split` made (JSON values). */
  chunks: unknown[];
  leaseMs: number;
  maxAttempts: number;
  /** The result when there are no chunks (the run ends at once). */
  emptyResult?: unknown;
}

// Every run script receives the run's keys (keys.ts `runKeyList`) and starts its ARGV with
// ARGV[1] TTL of an ended run (s), ARGV[2] the events channel; its own arguments follow from
// ARGV[3]. Its time is the store's (`NOW_LUA`): leases and the run's times alike.

// ARGV[3] the result JSON when there are no chunks, ARGV[4] how many field pairs follow,
// ARGV[5..] the run's fields as name, value, then the chunks (JSON), one argument each.
// Returns 1: the run is recorded, `queued` with its chunks pending, or `completed` at once
// without chunks.
const CREATE = defineScript({
  name: "parallel.create",
  lua: NOW_LUA + `
local first = 5 + 2 * tonumber(ARGV[4])
redis.call("HSET", KEYS[1], "created_at", now, unpack(ARGV, 5, first - 1))
if first > #ARGV then
  redis.call("HSET", KEYS[1], "status", "completed", "started_at", now, "finished_at", now,
    "result", ARGV[3])
  redis.call("EXPIRE", KEYS[1], ARGV[1])
  return 1
end
redis.call("HSET", KEYS[1], "status", "queued")
for i = first, #ARGV do
  redis.call("HSET", KEYS[6], i - first, ARGV[i])
  redis.call("RPUSH", KEYS[2], i - first)
end
return 1
`,
});

/** Lua: ends the run with a status (and a result or error), drops its work, tells workers. */
const END_RUN_LUA = `
local function end_run(status, field, value)
  redis.call("HSET", KEYS[1], "status", status, "finished_at", now)
  if field then redis.call("HSET", KEYS[1], field, value) end
  redis.call("DEL", KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
  redis.call("EXPIRE", KEYS[1], ARGV[1])
  redis.call("PUBLISH", ARGV[2], "stop " .. redis.call("HGET", KEYS[1], "refcode"))
end
`;

/**
 * Lua: claims the next chunk of the run for `token`. Returns {"chunk", index, chunk JSON,
 * task_id}: the chunk is leased to the token; {"merge", "", "", task_id}: every chunk is done,
 * the token holds the merge lease; {"full"}: worker_count leases are out; {"empty"}: nothing
 * to claim now; {"gone", status}: the run ended ("" when unknown). Leases that expired first
 * go back to the head of the queue (their process died), unless the chunk used up
 * max_attempts: then the run fails.
 */
const CLAIM_LUA = `
local function claim(token)
  local status = redis.call("HGET", KEYS[1], "status")
  if status ~= "queued" and status ~= "in_progress" then return {"gone", status or ""} end
  local run = redis.call("HMGET", KEYS[1], "worker_count", "total", "done", "lease_ms",
    "max_attempts", "task_id")
  for _, index in ipairs(redis.call("ZRANGEBYSCORE", KEYS[3], "-inf", now)) do
    redis.call("ZREM", KEYS[3], index)
    redis.call("HDEL", KEYS[4], index)
    if index ~= "merge" then
      if tonumber(redis.call("HGET", KEYS[5], index) or "0") >= tonumber(run[5]) then
        end_run("failed", "error", "chunk " .. index .. " lost its worker " .. run[5] .. " times")
        return {"gone", "failed"}
      end
      redis.call("LPUSH", KEYS[2], index)
    end
  end
  if redis.call("ZCARD", KEYS[3]) >= tonumber(run[1]) then return {"full"} end
  local expiry = now + tonumber(run[4])
  local index = redis.call("LPOP", KEYS[2])
  if not index then
    if tonumber(run[3]) >= tonumber(run[2]) and not redis.call("ZSCORE", KEYS[3], "merge") then
      redis.call("ZADD", KEYS[3], expiry, "merge")
      redis.call("HSET", KEYS[4], "merge", token)
      return {"merge", "", "", run[6]}
    end
    return {"empty"}
  end
  redis.call("ZADD", KEYS[3], expiry, index)
  redis.call("HSET", KEYS[4], index, token)
  redis.call("HINCRBY", KEYS[5], index, 1)
  if status == "queued" then
    redis.call("HSET", KEYS[1], "status", "in_progress", "started_at", now)
  end
  return {"chunk", index, redis.call("HGET", KEYS[6], index), run[6]}
end
`;

// ARGV[3] claim token. Returns what `claim` returns.
const CLAIM = defineScript({
  name: "parallel.claim",
  lua: NOW_LUA + END_RUN_LUA + CLAIM_LUA + `return claim(ARGV[3])`,
});

// ARGV[3] chunk index, ARGV[4] claim token, ARGV[5] result JSON, ARGV[6] a token for the next
// claim ("" for none).
// Returns {0}: the claim is no longer the token's (the run ended or the chunk was reclaimed),
// the result is dropped; {1, claim...}: recorded, then what `claim` returned for ARGV[6] (a
// process's thread goes on to its next chunk in the same round trip); {2}: recorded and it was
// the last chunk: the token now holds the merge lease.
const COMPLETE = defineScript({
  name: "parallel.complete",
  lua: NOW_LUA + END_RUN_LUA + CLAIM_LUA + `
if redis.call("HGET", KEYS[1], "status") ~= "in_progress" then return {0} end
if redis.call("HGET", KEYS[4], ARGV[3]) ~= ARGV[4] then return {0} end
redis.call("ZREM", KEYS[3], ARGV[3])
redis.call("HDEL", KEYS[4], ARGV[3])
redis.call("HSET", KEYS[7], ARGV[3], ARGV[5])
local done = redis.call("HINCRBY", KEYS[1], "done", 1)
if done >= tonumber(redis.call("HGET", KEYS[1], "total")) then
  local lease = tonumber(redis.call("HGET", KEYS[1], "lease_ms"))
  redis.call("ZADD", KEYS[3], now + lease, "merge")
  redis.call("HSET", KEYS[4], "merge", ARGV[4])
  return {2}
end
if ARGV[6] == "" then return {1} end
local out = claim(ARGV[6])
table.insert(out, 1, 1)
return out
`,
});

// ARGV[3] lease slot (chunk index or "merge"), ARGV[4] claim token, ARGV[5] status
// ("completed" or "failed"), ARGV[6] the result JSON or the error.
// Returns 1 when the run ended, 0 when the slot is not the token's (nothing changes).
const END = defineScript({
  name: "parallel.end",
  lua: NOW_LUA + END_RUN_LUA + `
if redis.call("HGET", KEYS[1], "status") ~= "in_progress" then return 0 end
if redis.call("HGET", KEYS[4], ARGV[3]) ~= ARGV[4] then return 0 end
if ARGV[5] == "completed" then end_run("completed", "result", ARGV[6])
else end_run("failed", "error", ARGV[6]) end
return 1
`,
});

// No arguments of its own.
// Returns the status before: "queued" or "in_progress" (now cancelled, its queued chunks
// dropped, workers told to stop), a terminal status (unchanged), or "" when unknown.
const CANCEL = defineScript({
  name: "parallel.cancel",
  lua: NOW_LUA + END_RUN_LUA + `
local status = redis.call("HGET", KEYS[1], "status")
if status == "queued" or status == "in_progress" then end_run("cancelled") end
return status or ""
`,
});

// ARGV[3..] pairs of lease slot and claim token.
// Returns {status, lost slot...}: the run's status ("" when unknown) and the slots that are no
// longer the token's; the others' leases are renewed.
const HEARTBEAT = defineScript({
  name: "parallel.heartbeat",
  lua: NOW_LUA + `
local status = redis.call("HGET", KEYS[1], "status")
if status ~= "in_progress" then return {status or ""} end
local out = {status}
local expiry = now + tonumber(redis.call("HGET", KEYS[1], "lease_ms"))
for i = 3, #ARGV, 2 do
  if redis.call("HGET", KEYS[4], ARGV[i]) == ARGV[i + 1] then
    redis.call("ZADD", KEYS[3], expiry, ARGV[i])
  else
    table.insert(out, ARGV[i])
  end
end
return out
`,
});

// ARGV[3..] pairs of lease slot and claim token.
// Returns how many slots were handed back: their chunks go to the head of the queue and the
// claim does not count as an attempt (a clean shutdown is not a failure).
const RELEASE = defineScript({
  name: "parallel.release",
  lua: `
if redis.call("HGET", KEYS[1], "status") ~= "in_progress" then return 0 end
local n = 0
for i = 3, #ARGV, 2 do
  if redis.call("HGET", KEYS[4], ARGV[i]) == ARGV[i + 1] then
    redis.call("ZREM", KEYS[3], ARGV[i])
    redis.call("HDEL", KEYS[4], ARGV[i])
    if ARGV[i] ~= "merge" then
      redis.call("HINCRBY", KEYS[5], ARGV[i], -1)
      redis.call("LPUSH", KEYS[2], ARGV[i])
    end
    n = n + 1
  end
end
return n
`,
});

/** A run's time stamp (epoch ms on the store's clock) as ISO, null when unset. */
const _iso = (ms: string | undefined): string | null =>
  ms === undefined ? null : new Date(Number(ms)).toISOString();

function _toClaim(reply: string[]): Claim {
  switch (reply[0]) {
    case "chunk":
      return { kind: "chunk", index: Number(reply[1]), chunk: _parse(reply[2]), taskId: reply[3] };
    case "merge":
      return { kind: "merge", taskId: reply[3] };
    case "gone":
      return { kind: "gone", status: reply[1] as JobStatus | "" };
    default:
      return { kind: reply[0] as "full" | "empty" };
  }
}

const _pairs = (held: readonly Held[]) => held.flatMap((h) => [h.slot, h.token]);

const _parse = (text: string | undefined): unknown => {
  if (text === undefined || text === "") return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
};

/** The runs of parallel tasks in one store, under one `KEY_PREFIX`. */
export class RunStore {
  #store: Store;
  #prefix: string;

  /**
   * @param store the store (its clock is the runs' clock: see `NOW_LUA`)
   * @param prefix `KEY_PREFIX`
   */
  constructor(store: Store, prefix: string) {
    this.#store = store;
    this.#prefix = prefix;
  }

  /** The events channel workers subscribe to. */
  get channel(): string {
    return eventsChannel(this.#prefix);
  }

  #eval(script: Script, refcode: string, args: (string | number)[]): Promise<Reply> {
    return this.#store.eval(script, runKeyList(runKeys(this.#prefix, refcode)), [
      RUN_TTL_S,
      this.channel,
      ...args,
    ]);
  }

  /**
   * Records a run and queues its chunks, then tells the workers.
   *
   * @param run the task, worker count, chunks and lease settings
   * @returns the new refcode
   */
  async create(run: NewRun): Promise<string> {
    const refcode = RUN_REFCODES.make();
    // The index first (a run without chunks ends at once and is never indexed): a worker that
    // finds the refcode before the run exists skips it, while a run written first and never
    // indexed would wait forever. Its score is this pod's clock: it is only compared with pods'
    // clocks, to forget a refcode whose run was never written.
    if (run.chunks.length) {
      await this.#store.command([
        "ZADD",
        activeRunsKey(this.#prefix, run.taskId),
        Date.now(),
        refcode,
      ]);
    }
    const fields = [
      ["refcode", refcode],
      ["task_id", run.taskId],
      ["worker_count", run.workerCount],
      ["total", run.chunks.length],
      ["done", 0],
      ["lease_ms", run.leaseMs],
      ["max_attempts", run.maxAttempts],
    ];
    await this.#eval(CREATE, refcode, [
      JSON.stringify(run.emptyResult ?? null),
      fields.length,
      ...fields.flat(),
      ...run.chunks.map((c) => JSON.stringify(c ?? null)),
    ]);
    if (run.chunks.length) await this.announce(run.taskId, refcode);
    return refcode;
  }

  /**
   * Wakes the workers: a run has chunks to claim.
   *
   * @param taskId the run's task
   * @param refcode the run
   */
  async announce(taskId: string, refcode: string): Promise<void> {
    await this.#store.command(["PUBLISH", this.channel, `run ${taskId} ${refcode}`]);
  }

  /**
   * Reads a run.
   *
   * @param refcode the run
   * @returns the run, or null when unknown or expired
   */
  async get(refcode: string): Promise<RunView | null> {
    const h = toHash(await this.#store.command(["HGETALL", runKeys(this.#prefix, refcode).run]));
    if (!h.refcode) return null;
    return {
      refcode: h.refcode,
      task_id: h.task_id,
      worker_count: Number(h.worker_count),
      status: h.status as JobStatus,
      progress: { done: Number(h.done ?? 0), total: Number(h.total ?? 0) },
      result: h.status === "completed" ? _parse(h.result) : null,
      error: h.error ?? null,
      created_at: _iso(h.created_at)!,
      started_at: _iso(h.started_at),
      finished_at: _iso(h.finished_at),
    };
  }

  /**
   * Cancels a run: status `cancelled`, queued chunks dropped, workers told to abort.
   *
   * @param refcode the run
   * @returns the status before (`queued`/`in_progress` means it is now cancelled), or null
   *   when unknown
   */
  async cancel(refcode: string): Promise<JobStatus | null> {
    const before = String(await this.#eval(CANCEL, refcode, []));
    return before === "" ? null : before as JobStatus;
  }

  /**
   * Claims the next chunk of a run for a token, within the run's `worker_count`.
   *
   * @param refcode the run
   * @param token the claim's unique token
   * @returns what was claimed, or why nothing was
   */
  async claim(refcode: string, token: string): Promise<Claim> {
    return _toClaim(await this.#eval(CLAIM, refcode, [token]) as string[]);
  }

  /**
   * Records a chunk's result if its claim is still the token's, and claims the run's next
   * chunk for `next` in the same round trip.
   *
   * @param refcode the run
   * @param index the chunk
   * @param token the claim's token
   * @param result the worker's result
   * @param next a token to claim the next chunk with (none: no claim)
   * @returns `dropped` (the run ended or the chunk was reclaimed), `recorded` (with the next
   *   claim when `next` was given), or `last` (the token now holds the merge lease)
   */
  async complete(
    refcode: string,
    index: number,
    token: string,
    result: unknown,
    next?: string,
  ): Promise<
    { outcome: "dropped" | "last"; next?: undefined } | { outcome: "recorded"; next?: Claim }
  > {
    const reply = await this.#eval(COMPLETE, refcode, [
      index,
      token,
      JSON.stringify(result ?? null),
      next ?? "",
    ]) as Reply[];
    if (reply[0] === 2) return { outcome: "last" };
    if (reply[0] !== 1) return { outcome: "dropped" };
    return {
      outcome: "recorded",
      next: reply.length > 1 ? _toClaim(reply.slice(1) as string[]) : undefined,
    };
  }

  /**
   * Ends a run as completed (with the merged result) or failed (with the error), if the
   * token still holds the slot.
   *
   * @param refcode the run
   * @param held the slot (a chunk index or `merge`) and the token
   * @param outcome the final status and its result or error
   * @returns whether the run ended now
   */
  async end(
    refcode: string,
    held: Held,
    outcome: { status: "completed"; result: unknown } | { status: "failed"; error: string },
  ): Promise<boolean> {
    const value = outcome.status === "completed"
      ? JSON.stringify(outcome.result ?? null)
      : outcome.error;
    return await this.#eval(END, refcode, [held.slot, held.token, outcome.status, value]) === 1;
  }

  /**
   * Renews the leases a process holds on one run.
   *
   * @param refcode the run
   * @param held the slots and tokens
   * @returns the run's status ("" when unknown) and the slots no longer held
   */
  async heartbeat(
    refcode: string,
    held: readonly Held[],
  ): Promise<{ status: JobStatus | ""; lost: string[] }> {
    const reply = await this.#eval(HEARTBEAT, refcode, _pairs(held)) as string[];
    return { status: reply[0] as JobStatus | "", lost: reply.slice(1).map(String) };
  }

  /**
   * Hands leases back (shutdown): the chunks go first in line, no attempt is counted.
   *
   * @param refcode the run
   * @param held the slots and tokens
   * @returns how many were handed back
   */
  async release(refcode: string, held: readonly Held[]): Promise<number> {
    return Number(await this.#eval(RELEASE, refcode, _pairs(held)));
  }

  /**
   * The chunks' results in chunk order, for the merge (one round trip).
   *
   * @param refcode the run
   * @returns one result per chunk, or null when the run is not in progress
   */
  async results(refcode: string): Promise<unknown[] | null> {
    const keys = runKeys(this.#prefix, refcode);
    const [run, results] = await this.#store.pipeline([
      ["HMGET", keys.run, "status", "total"],
      ["HGETALL", keys.results],
    ]);
    const [status, total] = run as (string | null)[];
    if (status !== "in_progress") return null;
    const h = toHash(results);
    return Array.from({ length: Number(total) }, (_, i) => _parse(h[String(i)]));
  }

  /**
   * The processes holding chunks of a run now (from the claims' tokens, `<instance>:<seq>`).
   *
   * @param refcode the run
   * @returns instance ids, each once
   */
  async workers(refcode: string): Promise<string[]> {
    const tokens = await this.#store.command([
      "HVALS",
      runKeys(this.#prefix, refcode).owners,
    ]) as string[];
    return [...new Set(tokens.map((t) => t.slice(0, t.lastIndexOf(":"))))];
  }

  /**
   * A task's runs that may have work, oldest first.
   *
   * @param taskId the task
   * @param limit how many at most
   * @returns refcodes with their creation time (epoch ms)
   */
  async active(taskId: string, limit = 100): Promise<{ refcode: string; createdMs: number }[]> {
    const reply = await this.#store.command([
      "ZRANGE",
      activeRunsKey(this.#prefix, taskId),
      0,
      limit - 1,
      "WITHSCORES",
    ]) as Reply[];
    // RESP3 (node-redis) answers [member, score] pairs, RESP2 a flat list.
    const pairs = Array.isArray(reply[0])
      ? reply as Reply[][]
      : Array.from({ length: reply.length / 2 }, (_, i) => reply.slice(2 * i, 2 * i + 2));
    return pairs.map(([refcode, score]) => ({
      refcode: String(refcode),
      createdMs: Number(score),
    }));
  }

  /**
   * How many runs of a task may still have work (its index of active runs).
   *
   * @param taskId the task
   * @returns the count
   */
  async activeCount(taskId: string): Promise<number> {
    return Number(await this.#store.command(["ZCARD", activeRunsKey(this.#prefix, taskId)]));
  }

  /**
   * Drops a run from its task's index (it ended, or was never written).
   *
   * @param taskId the task
   * @param refcode the run
   */
  async forget(taskId: string, refcode: string): Promise<void> {
    await this.#store.command(["ZREM", activeRunsKey(this.#prefix, taskId), refcode]);
  }
}
