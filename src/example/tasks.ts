/**
 * @module The example system's async tasks (API.md): `sleep` and `orders-report`.
 */
import * as v from "valibot";
import { defineTask } from "@svc/runtime";
import { ordersAllKey, ordersProcessedKey } from "./keys.ts";

/** Time between progress reports of `sleep`. */
const PROGRESS_EVERY_MS = 100;

/**
 * `sleep {ms, fail?}`: waits `ms`, reporting progress and honouring cancellation; result
 * `{slept_ms}`; `fail` makes it throw after the wait. At most 3 attempts, backoff from 200 ms.
 */
export const sleepTask = defineTask({
  name: "sleep",
  input: v.strictObject({
    ms: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(600_000)),
    fail: v.optional(v.boolean()),
  }),
  attempts: 3,
  backoff: { delayMs: 200, maxDelayMs: 5_000 },
  timeoutMs: 660_000,
  concurrency: 20,
  handler: async ({ ms, fail }, ctx) => {
    const started = Date.now();
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        clearTimeout(done);
        clearInterval(ticks);
        reject(ctx.signal.reason);
      };
      const done = setTimeout(() => {
        clearInterval(ticks);
        ctx.signal.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      const ticks = setInterval(
        () => ctx.progress(Math.min(1, (Date.now() - started) / Math.max(1, ms))),
        PROGRESS_EVERY_MS,
      );
      if (ctx.signal.aborted) onAbort();
      else ctx.signal.addEventListener("abort", onAbort, { once: true });
    });
    if (fail) throw new Error(`sleep failed on purpose after ${ms} ms (attempt ${ctx.attempt})`);
    return { slept_ms: ms };
  },
});

/** `orders-report {}`: counts orders and processed orders; result `{orders, processed}`. */
export const ordersReportTask = defineTask({
  name: "orders-report",
  input: v.strictObject({}),
  attempts: 3,
  backoff: { delayMs: 1_000 },
  timeoutMs: 60_000,
  handler: async (_input, ctx) => {
    const prefix = ctx.rt.config.keyPrefix;
    const [orders, processed] = await ctx.rt.store.pipeline([
      ["SCARD", ordersAllKey(prefix)],
      ["SCARD", ordersProcessedKey(prefix)],
    ]);
    return { orders: Number(orders), processed: Number(processed) };
  },
});
