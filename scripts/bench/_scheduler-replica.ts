/**
 * @module One replica of the scheduler benchmark: the runtime's `scheduler` role with a single
 * every-second schedule whose action appends `scheduled_ms:lateness_ms:pid` to a Redis list
 * (its lateness measured when the action starts, after the claim).
 */
import { main } from "../../src/main.ts";
import { System } from "../../src/system.ts";
import { defineSchedule } from "../../src/scheduler/define.ts";
import { key } from "../../src/infra/store.ts";

const system = new System().add(defineSchedule({
  name: "bench",
  cron: "* * * * * *",
  missed: "skip",
  action: async (ctx) => {
    const lateness = performance.timeOrigin + performance.now() - ctx.scheduledAt.getTime();
    await ctx.rt.store.command([
      "RPUSH",
      key(ctx.rt.config.keyPrefix, "bench", "ticks"),
      `${ctx.scheduledAt.getTime()}:${lateness.toFixed(2)}:${Deno.pid}`,
    ]);
  },
}));
Deno.exit(await main(system));
