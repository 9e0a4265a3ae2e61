import { test } from "uvu";
import * as assert from "uvu/assert";
import { cleanup, testRuntime } from "../helpers.ts";
import { createLogger } from "../../src/log.ts";
import type { OutgoingMessage } from "../../src/infra/bus.ts";
import { MemoryBus } from "../../src/infra/memory-bus.ts";
import { runAction } from "../../src/scheduler/actions.ts";
import type { ScheduleAction, ScheduleContext } from "../../src/scheduler/define.ts";

test.after(cleanup);

async function rejects(fn: () => Promise<unknown>, message?: RegExp): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (message) assert.match((err as Error).message, message);
    return;
  }
  assert.unreachable("expected a rejection");
}

const published: { topic: string; messages: OutgoingMessage[] }[] = [];
const bus = new MemoryBus();
const _publish = bus.publish.bind(bus);
bus.publish = (topic: string, messages: OutgoingMessage[]) => {
  published.push({ topic, messages });
  return _publish(topic, messages);
};

function context(signal = new AbortController().signal) {
  const enqueued: { type: string; input: unknown }[] = [];
  const ctx: ScheduleContext = {
    name: "job",
    scheduledAt: new Date("2025-01-01T02:00:00Z"),
    trigger: "schedule",
    runId: "run-1",
    signal,
    rt: testRuntime({ bus }),
    log: createLogger("error"),
    enqueue: (type, input) => {
      enqueued.push({ type: typeof type === "string" ? type : type.name, input });
      return Promise.resolve("ref-1");
    },
  };
  return { ctx, enqueued };
}

/** A local server answering with `statuses` in turn (the last one repeats). */
function serve(statuses: number[], delayMs = 0) {
  const seen: { method: string; key: string | null; body: string }[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    seen.push({
      method: req.method,
      key: req.headers.get("idempotency-key"),
      body: await req.text(),
    });
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    return new Response("x", { status: statuses[Math.min(seen.length - 1, statuses.length - 1)] });
  });
  return { url: `http://127.0.0.1:${server.addr.port}/hook`, seen, close: () => server.shutdown() };
}

test("runAction() calls a function action with the context", async () => {
  const { ctx } = context();
  let got: ScheduleContext | undefined;
  await runAction((c) => void (got = c), ctx);
  assert.is(got, ctx);
});

test("runAction() enqueues the task with its input, computed per run when a function", async () => {
  const { ctx, enqueued } = context();
  await runAction({ enqueue: "orders-report" }, ctx);
  await runAction({
    enqueue: "sleep",
    input: (c: ScheduleContext) => ({ ms: c.scheduledAt.getUTCHours() }),
  }, ctx);
  assert.equal(enqueued, [{ type: "orders-report", input: {} }, {
    type: "sleep",
    input: { ms: 2 },
  }]);
});

test("runAction() publishes to the topic under TOPIC_PREFIX with schedule headers", async () => {
  const { ctx } = context();
  published.length = 0;
  await runAction({ publish: "ticks" }, ctx);
  assert.is(published.length, 1);
  assert.is(published[0].topic, `${ctx.rt.config.topicPrefix}ticks`);
  const [m] = published[0].messages;
  assert.is(m.key, "job");
  assert.equal(JSON.parse(m.value), { schedule: "job", scheduled_at: "2025-01-01T02:00:00.000Z" });
  assert.equal(m.headers, { schedule: "job", "scheduled-at": "2025-01-01T02:00:00.000Z" });
});

test("runAction() retries an HTTP call on 5xx with the same idempotency key", async () => {
  const { ctx } = context();
  const s = serve([500, 503, 200]);
  try {
    await runAction({ http: { url: s.url, body: { a: 1 }, retries: 2, retryDelayMs: 10 } }, ctx);
    assert.is(s.seen.length, 3);
    assert.ok(
      s.seen.every((r) => r.method === "POST" && r.key === "run-1" && r.body === '{"a":1}'),
    );
  } finally {
    await s.close();
  }
});

test("runAction() fails an HTTP call on 4xx at once, and after the last retry on 5xx", async () => {
  const { ctx } = context();
  const notFound = serve([404]);
  const down = serve([502]);
  try {
    const action = (url: string): ScheduleAction => ({
      http: { url, method: "GET", retries: 2, retryDelayMs: 10 },
    });
    await rejects(() => runAction(action(notFound.url), ctx), /answered 404/);
    assert.is(notFound.seen.length, 1);
    await rejects(() => runAction(action(down.url), ctx), /answered 502/);
    assert.is(down.seen.length, 3);
  } finally {
    await notFound.close();
    await down.close();
  }
});

test("runAction() times an HTTP attempt out", async () => {
  const { ctx } = context();
  const slow = serve([200], 500);
  try {
    const started = Date.now();
    await rejects(
      () =>
        runAction({ http: { url: slow.url, timeoutMs: 50, retries: 1, retryDelayMs: 10 } }, ctx),
      /timed out after 50 ms/,
    );
    assert.ok(Date.now() - started < 450);
    assert.is(slow.seen.length, 2);
  } finally {
    await slow.close();
  }
});

test("runAction() stops retrying when the run is aborted", async () => {
  const controller = new AbortController();
  const { ctx } = context(controller.signal);
  const down = serve([500]);
  try {
    setTimeout(() => controller.abort(), 100);
    await rejects(() => runAction({ http: { url: down.url, retries: 10, retryDelayMs: 40 } }, ctx));
    assert.ok(down.seen.length < 6);
  } finally {
    await down.close();
  }
});

test.run();
