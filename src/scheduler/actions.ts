/**
 * @module Runs a schedule's action: a function, an async-task enqueue, a Kafka publish, or an
 * HTTP call with a timeout per attempt and retries.
 */
import { backoff } from "../async/backoff.ts";
import { delay } from "../async/delay.ts";
import type {
  HttpAction,
  PerRun,
  PublishAction,
  ScheduleAction,
  ScheduleContext,
} from "./define.ts";

/** Default HTTP timeout per attempt. */
export const HTTP_TIMEOUT_MS = 10_000;
/** Default HTTP retries after the first attempt. */
export const HTTP_RETRIES = 2;
/** Default first HTTP backoff (doubled each retry). */
export const HTTP_RETRY_DELAY_MS = 500;

/** Cap of the HTTP backoff. */
export const HTTP_MAX_RETRY_DELAY_MS = 30_000;

/** A failed HTTP call that another attempt would not fix (4xx other than 408 and 429). */
class _Permanent extends Error {}

async function _value<T>(
  value: PerRun<T> | undefined,
  ctx: ScheduleContext,
): Promise<T | undefined> {
  return typeof value === "function"
    ? await (value as (ctx: ScheduleContext) => T | Promise<T>)(ctx)
    : value;
}

async function _publish(action: PublishAction, ctx: ScheduleContext): Promise<void> {
  const scheduledAt = ctx.scheduledAt.toISOString();
  const value = (await _value(action.value, ctx)) ??
    { schedule: ctx.name, scheduled_at: scheduledAt };
  await ctx.rt.bus.publish(action.publish, [{
    key: action.key ?? ctx.name,
    value: JSON.stringify(value),
    headers: { ...action.headers, schedule: ctx.name, "scheduled-at": scheduledAt },
  }]);
}

async function _http(action: HttpAction, ctx: ScheduleContext): Promise<void> {
  const h = action.http;
  const timeoutMs = h.timeoutMs ?? HTTP_TIMEOUT_MS;
  const retries = h.retries ?? HTTP_RETRIES;
  const retryDelayMs = h.retryDelayMs ?? HTTP_RETRY_DELAY_MS;
  const body = await _value(h.body, ctx);
  const headers: Record<string, string> = {
    // The same key on every attempt, so a receiver that honours it runs the call once.
    "idempotency-key": ctx.runId,
    ...(body !== undefined ? { "content-type": "application/json" } : {}),
    ...h.headers,
  };
  let last: unknown;
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) {
      await delay(backoff(attempt, { initialMs: retryDelayMs, maxMs: HTTP_MAX_RETRY_DELAY_MS }), {
        signal: ctx.signal,
      });
      ctx.log.warn("schedule http call retried", { attempt, error: String(last) });
    }
    if (ctx.signal.aborted) break;
    try {
      const res = await fetch(h.url, {
        method: h.method ?? "POST",
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(timeoutMs)]),
      });
      await res.body?.cancel();
      if (res.ok) return;
      const err = new Error(`${h.method ?? "POST"} ${h.url} answered ${res.status}`);
      if (res.status < 500 && res.status !== 408 && res.status !== 429) {
        throw new _Permanent(err.message);
      }
      last = err;
    } catch (err) {
      if (err instanceof _Permanent) throw new Error(err.message);
      last = err instanceof DOMException && err.name === "TimeoutError"
        ? new Error(`${h.method ?? "POST"} ${h.url} timed out after ${timeoutMs} ms`)
        : err;
    }
  }
  throw last instanceof Error ? last : new Error(String(last ?? "The HTTP call was aborted"));
}

/**
 * Runs one action to its end.
 *
 * @param action the schedule's action
 * @param ctx the run's context
 * @throws whatever the action threw; the run is recorded `failed` with its message
 */
export async function runAction(action: ScheduleAction, ctx: ScheduleContext): Promise<void> {
  if (typeof action === "function") {
    await action(ctx);
  } else if ("enqueue" in action) {
    await ctx.enqueue(action.enqueue, (await _value(action.input, ctx)) ?? {});
  } else if ("publish" in action) {
    await _publish(action, ctx);
  } else {
    await _http(action, ctx);
  }
}
