/**
 * @module The scheduler's state in the store: per-schedule tick claims, run records (newest
 * 100), the overlap lock with its lease, and the queue of manual runs.
 */
import { defineScript, type Reply, type Store, toHash } from "../infra/store.ts";
import { manualQueueKey, scheduleKeys, wakeChannel } from "./keys.ts";
import type { Trigger } from "./define.ts";

/** Runs kept per schedule (API.md). */
export const RUNS_KEPT = 100;

/** A run's status. `skipped`: its tick found the previous run still going (overlap `skip`). */
export type ScheduleRunStatus = "queued" | "running" | "completed" | "failed" | "skipped";

/** One run as stored. Times are epoch ms. */
export interface RunRecord {
  /** The run's id (also the idempotency key of what it enqueues). */
  id: string;
  /** What started it. */
  trigger: Trigger;
  /** The tick it is for, epoch ms. */
  scheduledAt: number;
  /** When it started, epoch ms. */
  startedAt: number | null;
  /** When it finished, epoch ms. */
  finishedAt: number | null;
  /** Its status. */
  status: ScheduleRunStatus;
  /** The scheduler replica that ran it. */
  replica: string | null;
  /** The task its action enqueued, if any. */
  refcode: string | null;
  /** Why it failed. */
  error: string | null;
}

/**
 * How `begin` treats the overlap lock: `skip` takes it or records the run skipped, `wait`
 * takes it or records nothing and answers `busy` (catch-up runs wait their turn), `allow`
 * ignores it, `force` takes it if free and runs anyway (manual runs), `queue` only records the
 * run as queued.
 */
export type LockMode = "skip" | "wait" | "allow" | "force" | "queue";

/** What `begin` did. */
export type BeginOutcome = "lost" | "claimed" | "running" | "skipped" | "busy" | "queued";

/** A manual run waiting for a replica. */
export interface ManualRequest {
  name: string;
  id: string;
  /** When it was asked for (epoch ms), its `scheduled_at`. */
  at: number;
}

const _num = (v: Reply) => (v === null || v === "" ? null : Number(v));

// begin: claims ticks up to an instant (optional) and opens a run's record (optional).
// KEYS[1] state hash   KEYS[2] overlap lock   KEYS[3] run list   KEYS[4] run hash
// KEYS[5] run's alive key
// ARGV[1] claim up to (epoch ms), or "" when the tick is already owned
// ARGV[2] run id, or "" to claim only
// ARGV[3] lock mode: skip | wait | allow | force | queue
// ARGV[4] lease ms   ARGV[5] runs kept   ARGV[6] now (epoch ms)
// ARGV[7..] the run's fields: name, value, …
// Returns {outcome, previous claim or "", ids trimmed off the run list…}; outcome: lost (ARGV[1]
// was already claimed), claimed (claim only), running, skipped (the lock is held: recorded), busy
// (the lock is held: nothing recorded), queued. The caller deletes the trimmed runs' keys: a
// script may touch only the keys it is given, and which runs fall off is known only here.
const BEGIN = defineScript({
  name: "scheduler.begin",
  lua: `
local prev = redis.call("HGET", KEYS[1], "claimed")
if ARGV[1] ~= "" then
  if prev and tonumber(prev) >= tonumber(ARGV[1]) then return {"lost", prev} end
  redis.call("HSET", KEYS[1], "claimed", ARGV[1])
end
prev = prev or ""
if ARGV[2] == "" then return {"claimed", prev} end
local outcome = "running"
if ARGV[3] == "queue" then
  outcome = "queued"
elseif ARGV[3] == "skip" then
  if not redis.call("SET", KEYS[2], ARGV[2], "NX", "PX", ARGV[4]) then outcome = "skipped" end
elseif ARGV[3] == "wait" then
  if not redis.call("SET", KEYS[2], ARGV[2], "NX", "PX", ARGV[4]) then return {"busy", prev} end
elseif ARGV[3] == "force" then
  redis.call("SET", KEYS[2], ARGV[2], "NX", "PX", ARGV[4])
end
local fresh = redis.call("EXISTS", KEYS[4]) == 0
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call("HSET", KEYS[4], unpack(fields))
if outcome == "running" then
  redis.call("SET", KEYS[5], "1", "PX", ARGV[4])
elseif outcome == "skipped" then
  redis.call("HSET", KEYS[4], "status", "skipped", "started_at", "", "finished_at", ARGV[6])
else
  redis.call("HSET", KEYS[4], "status", "queued", "started_at", "", "replica", "")
end
local out = {outcome, prev}
if fresh then
  redis.call("LPUSH", KEYS[3], ARGV[2])
  local kept = tonumber(ARGV[5])
  for _, id in ipairs(redis.call("LRANGE", KEYS[3], kept, -1)) do out[#out + 1] = id end
  redis.call("LTRIM", KEYS[3], 0, kept - 1)
end
return out
`,
});

// finish: closes a running run's record and releases what it holds, if the caller still owns it.
// KEYS[1] overlap lock   KEYS[2] run hash   KEYS[3] run's alive key
// ARGV[1] run id   ARGV[2] the replica finishing it   ARGV[3..] fields to set: name, value, …
// Returns 1 when the record was written, 0 when it was no longer running (finished already,
// trimmed away, or taken over by another replica).
const FINISH = defineScript({
  name: "scheduler.finish",
  lua: `
if redis.call("HGET", KEYS[2], "replica") ~= ARGV[2] then return 0 end
if redis.call("GET", KEYS[1]) == ARGV[1] then redis.call("DEL", KEYS[1]) end
redis.call("DEL", KEYS[3])
if redis.call("HGET", KEYS[2], "status") ~= "running" then return 0 end
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call("HSET", KEYS[2], unpack(fields))
return 1
`,
});

// renew: extends a running run's leases (its alive key, and the overlap lock if it holds it),
// if the caller still owns the run.
// KEYS[1] overlap lock   KEYS[2] run hash   KEYS[3] run's alive key
// ARGV[1] run id   ARGV[2] lease ms   ARGV[3] the replica running it
// Returns 1 when renewed, 0 when the run is no longer running or no longer this replica's.
const RENEW = defineScript({
  name: "scheduler.renew",
  lua: `
if redis.call("HGET", KEYS[2], "status") ~= "running" then return 0 end
if redis.call("HGET", KEYS[2], "replica") ~= ARGV[3] then return 0 end
if redis.call("GET", KEYS[1]) == ARGV[1] then redis.call("PEXPIRE", KEYS[1], ARGV[2]) end
redis.call("SET", KEYS[3], "1", "PX", ARGV[2])
return 1
`,
});

// take over: a running run whose lease expired (its replica died between claiming the tick and
// finishing the run) becomes the caller's; after too many takeovers it is failed instead.
// KEYS[1] overlap lock   KEYS[2] run hash   KEYS[3] run's alive key
// ARGV[1] run id   ARGV[2] replica   ARGV[3] lease ms   ARGV[4] now (epoch ms)
// ARGV[5] most takeovers
// Returns 1 when taken over, 2 when failed for too many takeovers, 0 when not orphaned.
const TAKE_OVER = defineScript({
  name: "scheduler.takeOver",
  lua: `
if redis.call("HGET", KEYS[2], "status") ~= "running" then return 0 end
if redis.call("EXISTS", KEYS[3]) == 1 then return 0 end
local taken = tonumber(redis.call("HGET", KEYS[2], "takeovers") or "0")
if taken >= tonumber(ARGV[5]) then
  redis.call("HSET", KEYS[2], "status", "failed", "finished_at", ARGV[4],
    "error", "Its replica stopped before it finished, " .. taken .. " times in a row")
  if redis.call("GET", KEYS[1]) == ARGV[1] then redis.call("DEL", KEYS[1]) end
  return 2
end
redis.call("HSET", KEYS[2], "replica", ARGV[2], "started_at", ARGV[4], "takeovers", taken + 1)
redis.call("SET", KEYS[3], "1", "PX", ARGV[3])
if not redis.call("GET", KEYS[1]) then redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[3]) end
return 1
`,
});

/** What `begin` needs. */
export interface BeginRequest {
  id: string;
  /** Claim ticks up to this instant first (CAS on the schedule's claim mark); null: owned. */
  claimUpTo: number | null;
  lock: LockMode;
  leaseMs: number;
  now: number;
  record: Omit<RunRecord, "id" | "error" | "refcode">;
}

/** The scheduler's reads and writes, on any Store. */
export class ScheduleStore {
  #store: Store;
  #prefix: string;

  /**
   * @param store the runtime's store
   * @param prefix `KEY_PREFIX`
   */
  constructor(store: Store, prefix: string) {
    this.#store = store;
    this.#prefix = prefix;
  }

  /**
   * Claims every tick up to `upTo` that nobody claimed yet.
   *
   * @param name the schedule
   * @param upTo epoch ms
   * @returns won: the range `(previous, upTo]` is this caller's; previous: the mark before
   *   (null the first time the schedule ever ran)
   */
  async claim(name: string, upTo: number): Promise<{ won: boolean; previous: number | null }> {
    const [outcome, previous] = await this.#begin(name, "", upTo, "allow", 0, 0, []);
    return { won: outcome === "claimed", previous: _num(previous) };
  }

  /**
   * Opens a run (claiming its tick first when `claimUpTo` is set).
   *
   * @param name the schedule
   * @param req the run
   * @returns the outcome, and the claim mark before this call
   */
  async begin(
    name: string,
    req: BeginRequest,
  ): Promise<{ outcome: BeginOutcome; previous: number | null }> {
    const r = req.record;
    const fields = [
      "id",
      req.id,
      "trigger",
      r.trigger,
      "scheduled_at",
      r.scheduledAt,
      "started_at",
      r.startedAt ?? "",
      "finished_at",
      r.finishedAt ?? "",
      "status",
      r.status,
      "replica",
      r.replica ?? "",
    ];
    const [outcome, previous] = await this.#begin(
      name,
      req.id,
      req.claimUpTo,
      req.lock,
      req.leaseMs,
      req.now,
      fields,
    );
    return { outcome: outcome as BeginOutcome, previous: _num(previous) };
  }

  async #begin(
    name: string,
    id: string,
    upTo: number | null,
    lock: LockMode,
    leaseMs: number,
    now: number,
    fields: (string | number)[],
  ): Promise<[string, Reply]> {
    const k = scheduleKeys(this.#prefix, name);
    const reply = await this.#store.eval(
      BEGIN,
      [k.state, k.lock, k.runs, k.runPrefix + id, k.alivePrefix + id],
      [
        upTo ?? "",
        id,
        lock,
        leaseMs,
        RUNS_KEPT,
        now,
        ...fields,
      ],
    ) as Reply[];
    const trimmed = reply.slice(2).map(String);
    if (trimmed.length) {
      // One slot (the schedule's tag). Should this fail, the records left over are unlisted
      // and harmless; the next trim does not see them again.
      await this.#store.command(
        ["DEL", ...trimmed.flatMap((old) => [k.runPrefix + old, k.alivePrefix + old])],
      ).catch(() => {});
    }
    return [String(reply[0]), reply[1]];
  }

  /**
   * Closes a running run, if `replica` still owns it.
   *
   * @param name the schedule
   * @param id the run
   * @param replica the replica running it
   * @param fields `status`, `finished_at`, `refcode`, `error`
   * @returns false when the run was no longer running, or no longer this replica's
   */
  async finish(
    name: string,
    id: string,
    replica: string,
    fields: { status: ScheduleRunStatus; finishedAt: number; refcode?: string; error?: string },
  ): Promise<boolean> {
    const k = scheduleKeys(this.#prefix, name);
    const args: (string | number)[] = [
      id,
      replica,
      "status",
      fields.status,
      "finished_at",
      fields.finishedAt,
    ];
    if (fields.refcode) args.push("refcode", fields.refcode);
    if (fields.error) args.push("error", fields.error.slice(0, 2000));
    const reply = await this.#store.eval(
      FINISH,
      [k.lock, k.runPrefix + id, k.alivePrefix + id],
      args,
    );
    return reply === 1;
  }

  /**
   * Extends a running run's leases, if `replica` still owns it.
   *
   * @param name the schedule
   * @param id the run
   * @param leaseMs new lease
   * @param replica the replica running it
   * @returns false when the run is no longer running, or was taken over
   */
  async renew(name: string, id: string, leaseMs: number, replica: string): Promise<boolean> {
    const k = scheduleKeys(this.#prefix, name);
    const reply = await this.#store.eval(
      RENEW,
      [k.lock, k.runPrefix + id, k.alivePrefix + id],
      [id, leaseMs, replica],
    );
    return reply === 1;
  }

  /**
   * The newest runs still recorded `running` whose lease expired: their replica died.
   *
   * @param name the schedule
   * @param newest how many of the newest runs to look at
   * @returns the orphaned runs
   */
  async orphans(name: string, newest: number): Promise<RunRecord[]> {
    return (await this.#newest(name, newest))
      .filter(({ record, alive }) => record.status === "running" && !alive)
      .map(({ record }) => record);
  }

  /** The newest run records, newest first, each with whether its lease is held. */
  async #newest(name: string, limit: number): Promise<{ record: RunRecord; alive: boolean }[]> {
    const k = scheduleKeys(this.#prefix, name);
    const ids = await this.#store.command(["LRANGE", k.runs, 0, limit - 1]) as string[];
    if (!ids.length) return [];
    const replies = await this.#store.pipeline(
      ids.flatMap((id) => [["HGETALL", k.runPrefix + id], ["EXISTS", k.alivePrefix + id]]),
    );
    const out: { record: RunRecord; alive: boolean }[] = [];
    for (let i = 0; i < ids.length; i++) {
      const h = toHash(replies[2 * i]);
      if (h.id) out.push({ record: _record(h), alive: replies[2 * i + 1] !== 0 });
    }
    return out;
  }

  /**
   * Takes over an orphaned run (its lease expired): it becomes `replica`'s, with a new lease.
   *
   * @param name the schedule
   * @param id the run
   * @param replica the replica taking it
   * @param leaseMs its lease
   * @param now epoch ms (its new `started_at`)
   * @param most takeovers allowed before the run is failed instead
   * @returns `taken`, `failed` (too many takeovers) or `kept` (not orphaned: someone has it)
   */
  async takeOver(
    name: string,
    id: string,
    replica: string,
    leaseMs: number,
    now: number,
    most: number,
  ): Promise<"taken" | "failed" | "kept"> {
    const k = scheduleKeys(this.#prefix, name);
    const reply = await this.#store.eval(
      TAKE_OVER,
      [k.lock, k.runPrefix + id, k.alivePrefix + id],
      [id, replica, leaseMs, now, most],
    );
    return reply === 1 ? "taken" : reply === 2 ? "failed" : "kept";
  }

  /**
   * Records a manual run as queued and hands it to the scheduler replicas.
   *
   * @param name the schedule
   * @param id the run
   * @param at the request time (its `scheduled_at`)
   * @returns the queued record
   */
  async queueManual(name: string, id: string, at: number): Promise<RunRecord> {
    const record: RunRecord = {
      id,
      trigger: "manual",
      scheduledAt: at,
      startedAt: null,
      finishedAt: null,
      status: "queued",
      replica: null,
      refcode: null,
      error: null,
    };
    await this.begin(name, { id, claimUpTo: null, lock: "queue", leaseMs: 0, now: at, record });
    await this.#store.command([
      "LPUSH",
      manualQueueKey(this.#prefix),
      JSON.stringify({ name, id, at } satisfies ManualRequest),
    ]);
    await this.#store.command(["PUBLISH", wakeChannel(this.#prefix), name]);
    return record;
  }

  /**
   * Takes the oldest manual-run request; each is taken by exactly one caller.
   *
   * @returns the request, or null when none waits
   */
  async takeManual(): Promise<ManualRequest | null> {
    const reply = await this.#store.command(["RPOP", manualQueueKey(this.#prefix)]);
    if (reply === null) return null;
    try {
      return JSON.parse(String(reply)) as ManualRequest;
    } catch {
      return null;
    }
  }

  /**
   * Subscribes to manual-run wake-ups.
   *
   * @param onWake called with the schedule's name
   * @returns the function that unsubscribes
   */
  subscribeManual(onWake: (name: string) => void): Promise<() => Promise<void>> {
    return this.#store.subscribe(wakeChannel(this.#prefix), onWake);
  }

  /**
   * The newest runs, newest first. A `running` run whose lease expired (its replica died) is
   * reported `failed`.
   *
   * @param name the schedule
   * @param limit how many
   * @returns the records
   */
  async runs(name: string, limit: number): Promise<RunRecord[]> {
    return (await this.#newest(name, limit)).map(({ record, alive }) =>
      record.status === "running" && !alive
        ? {
          ...record,
          status: "failed",
          error: "The replica running it stopped before it finished",
        }
        : record
    );
  }

  /**
   * The claim mark: every tick at or before it has been claimed (or declared missed).
   *
   * @param name the schedule
   * @returns epoch ms, or null if the schedule never ran
   */
  async claimed(name: string): Promise<number | null> {
    return _num(
      await this.#store.command(["HGET", scheduleKeys(this.#prefix, name).state, "claimed"]),
    );
  }
}

function _record(h: Record<string, string>): RunRecord {
  return {
    id: h.id,
    trigger: (h.trigger || "schedule") as Trigger,
    scheduledAt: Number(h.scheduled_at),
    startedAt: h.started_at ? Number(h.started_at) : null,
    finishedAt: h.finished_at ? Number(h.finished_at) : null,
    status: h.status as ScheduleRunStatus,
    replica: h.replica || null,
    refcode: h.refcode || null,
    error: h.error || null,
  };
}
