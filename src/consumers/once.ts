/**
 * @module Effects applied once per identity across redeliveries: the effect's commands and a
 * `SET NX` marker on its identity run in one atomic script, on Redis or the embedded store.
 */
import { type Command, defineScript, type Store } from "../infra/store.ts";

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
 * APPLY_ONCE
 *
 * KEYS[i]  marker of effect i
 * ARGV[1]  marker time to live, ms
 * ARGV[2]  JSON `{"effects": [[[cmd, arg…], …] per key], "summary": [[cmd, arg…], …]}`;
 *          in summary commands the argument "$applied" stands for the count applied now
 *
 * Each effect's commands run only if its marker was absent (`SET NX PX`); the summary commands
 * run once after them.
 *
 * Returns: the number of effects applied now.
 */
const APPLY_ONCE = defineScript({
  name: "apply-once",
  lua: `
local spec = cjson.decode(ARGV[2])
local applied = 0
for i, key in ipairs(KEYS) do
  if redis.call("SET", key, "1", "NX", "PX", ARGV[1]) then
    applied = applied + 1
    for _, cmd in ipairs(spec.effects[i]) do redis.call(unpack(cmd)) end
  end
end
for _, cmd in ipairs(spec.summary) do
  for j, arg in ipairs(cmd) do
    if arg == "$applied" then cmd[j] = tostring(applied) end
  end
  redis.call(unpack(cmd))
end
return applied
`,
});

function _strings(commands: Command[]): string[][] {
  return commands.map((c) => c.map(String));
}

/**
 * Applies effects, each at most once per identity, plus summary commands, atomically in one
 * round trip. An identity listed twice in one call applies once (its first entry). Effects
 * should be commands that cannot fail (right key types): like any Redis script, one that
 * fails midway keeps the writes made before it.
 *
 * @param store the store
 * @param markerKey builds an identity's marker key
 * @param effects the effects
 * @param summary commands run every time, where `"$applied"` becomes the count applied now
 * @param ttlMs how long markers live
 * @returns how many effects were applied now (the rest had been before)
 * @example
 * ```ts
 * const applied = await applyOnce(rt.store, (id) => `svc:{once:orders}:${id}`, [
 *   { id: "o1", commands: [["HSET", "svc:{order:o1}", "processed", "1"]] },
 * ]);
 * ```
 */
export async function applyOnce(
  store: Store,
  markerKey: (identity: string) => string,
  effects: Effect[],
  summary: Command[] = [],
  ttlMs = ONCE_TTL_MS,
): Promise<number> {
  if (effects.length === 0 && summary.length === 0) return 0;
  const reply = await store.eval(
    APPLY_ONCE,
    effects.map((e) => markerKey(e.id)),
    [
      ttlMs,
      JSON.stringify({
        effects: effects.map((e) => _strings(e.commands)),
        summary: _strings(summary),
      }),
    ],
  );
  return Number(reply);
}
