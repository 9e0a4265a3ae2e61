/**
 * @module Effects applied once per identity across redeliveries: the effect's commands and a
 * `SET NX` marker on its identity run in one atomic script, on Redis or the embedded store.
 */
import { clusterSlot, type Command, defineScript, hashTag, type Store } from "../infra/store.ts";

/** One effect: its identity and the commands that make it. */
export interface Effect {
  /** What makes it unique: a message id (`topic/partition/offset`), an order id… */
  id: string;
  /** The commands, run atomically with the effect's marker. */
  commands: Command[];
}

/** How long markers live by default: Kafka's default retention, after which nothing is redelivered. */
export const ONCE_TTL_MS = 7 * 24 * 3600 * 1000;

/**
 * APPLY_ONCE — every key it touches is in KEYS, all in one slot (see `applyOnce`).
 *
 * KEYS[1..n]   markers of the effects
 * KEYS[n+1..]  the keys the commands write
 * ARGV[1]      marker time to live, ms
 * ARGV[2]      JSON `{"markers": n, "effects": [[[cmd, keyIndex, arg…], …] per marker],
 *              "summary": [[cmd, keyIndex, arg…], …]}`; `keyIndex` points into KEYS; in summary
 *              commands the argument "$applied" stands for the count applied now
 * ARGV[3]      applied before this call (by the calls of the other slots)
 *
 * Each effect's commands run only if its marker was absent (`SET NX PX`); the summary commands
 * run once after them.
 *
 * Returns: the number of effects applied by this call.
 */
const APPLY_ONCE = defineScript({
  name: "apply-once",
  lua: `
local spec = cjson.decode(ARGV[2])
local before = tonumber(ARGV[3])
local applied = 0
local function run(cmd, summary)
  local args = {cmd[1], KEYS[cmd[2]]}
  for j = 3, #cmd do
    local a = cmd[j]
    if summary and a == "$applied" then a = tostring(before + applied) end
    args[#args + 1] = a
  end
  redis.call(unpack(args))
end
for i = 1, spec.markers do
  if redis.call("SET", KEYS[i], "1", "NX", "PX", ARGV[1]) then
    applied = applied + 1
    for _, cmd in ipairs(spec.effects[i]) do run(cmd, false) end
  end
end
for _, cmd in ipairs(spec.summary) do run(cmd, true) end
return applied
`,
});

/** The effects and summary of one slot, as one script call. */
interface SlotCall {
  markers: string[];
  effects: Command[][];
  summary: Command[];
}

function _call(ttlMs: number, call: SlotCall, before: number): [string[], (string | number)[]] {
  const keys = [...call.markers];
  const index = new Map<string, number>();
  const encode = (c: Command) => {
    if (c.length < 2) throw new Error(`applyOnce: "${c[0]}" names no key`);
    const k = String(c[1]);
    let i = index.get(k);
    if (i === undefined) {
      keys.push(k);
      index.set(k, i = keys.length);
    }
    return [String(c[0]), i, ...c.slice(2).map(String)];
  };
  const spec = {
    markers: call.markers.length,
    effects: call.effects.map((cmds) => cmds.map(encode)),
    summary: call.summary.map(encode),
  };
  return [keys, [ttlMs, JSON.stringify(spec), before]];
}

/**
 * Applies effects, each at most once per identity, plus summary commands, in one round trip
 * per Redis Cluster slot (one in all on a single server or when the effects share a slot, as
 * they should: then it is atomic). An effect's marker sits in the slot of the key its first
 * command writes, so the marker and the effect are written together; every command names its
 * one key first (`["HSET", key, …]`). An identity listed twice in one call applies once (its
 * first entry). Effects should be commands that cannot fail (right key types): like any Redis
 * script, one that fails midway keeps the writes made before it.
 *
 * @param store the store
 * @param markerKey builds an identity's marker key inside a hash tag (that of its effect)
 * @param effects the effects
 * @param summary commands run every time, where `"$applied"` becomes the count applied now
 * @param ttlMs how long markers live
 * @returns how many effects were applied now (the rest had been before)
 * @example
 * ```ts
 * const applied = await applyOnce(rt.store, (id, tag) => `svc:{${tag}}:once:${id}`, [
 *   { id: "o1", commands: [["HSET", "svc:{svc:orders}:order:o1", "processed", "1"]] },
 * ]);
 * ```
 */
export async function applyOnce(
  store: Store,
  markerKey: (identity: string, tag: string) => string,
  effects: Effect[],
  summary: Command[] = [],
  ttlMs = ONCE_TTL_MS,
): Promise<number> {
  if (effects.length === 0 && summary.length === 0) return 0;
  const calls = new Map<number, SlotCall>();
  const slotCall = (slot: number) => {
    let c = calls.get(slot);
    if (!c) calls.set(slot, c = { markers: [], effects: [], summary: [] });
    return c;
  };
  for (const e of effects) {
    const anchor = e.commands.length ? String(e.commands[0][1]) : e.id;
    const marker = markerKey(e.id, hashTag(anchor));
    const c = slotCall(clusterSlot(marker));
    c.markers.push(marker);
    c.effects.push(e.commands);
  }
  const summarySlot = summary.length ? clusterSlot(String(summary[0][1])) : undefined;
  if (summarySlot !== undefined) slotCall(summarySlot).summary = summary;
  // The slots without the summary first, so it can count what they applied.
  let applied = 0;
  for (const [slot, call] of calls) {
    if (slot === summarySlot) continue;
    const [keys, args] = _call(ttlMs, call, applied);
    applied += Number(await store.eval(APPLY_ONCE, keys, args));
  }
  if (summarySlot !== undefined) {
    const [keys, args] = _call(ttlMs, calls.get(summarySlot)!, applied);
    applied += Number(await store.eval(APPLY_ONCE, keys, args));
  }
  return applied;
}
