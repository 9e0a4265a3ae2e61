/**
 * @module The signups service: a route that publishes signups, a consumer that records them
 * and enqueues a welcome task, a nightly schedule and a parallel task.
 */
import * as v from "valibot";
import {
  defineConsumer,
  defineParallelTask,
  defineSchedule,
  defineTask,
  describeRoute,
  jsonContent,
  key,
  type RouteModule,
  System,
  validate,
} from "@svc/runtime";

const Signup = v.object({ email: v.pipe(v.string(), v.email()) });

/** Where a signup is recorded: `<KEY_PREFIX>:{signups}:<email>`. */
export const signupKey = (prefix: string, email: string): string => key(prefix, "signups", email);

/** `welcome` `{email}` → `{sent_to}`: an async task (`POST /tasks/welcome` works too). */
export const welcome = defineTask({
  name: "welcome",
  input: Signup,
  attempts: 5,
  handler: async ({ email }, ctx) => {
    ctx.progress(0.5); // a real one would call a mail API here, with ctx.signal
    await ctx.rt.store.command(["HSET", signupKey(ctx.rt.config.keyPrefix, email), "welcomed", 1]);
    return { sent_to: email };
  },
});

/** Records each signup once, then enqueues its welcome. */
export const signups = defineConsumer({
  name: "signups",
  topic: "signups",
  schema: Signup,
  handler: async ({ value }, ctx) => {
    const first = await ctx.once([
      ["HSET", signupKey(ctx.rt.config.keyPrefix, value.email), "email", value.email],
    ]);
    if (first) await ctx.enqueue(welcome, value, { idempotencyKey: value.email });
  },
});

/** Every night at 03:00 UTC, publishes a digest request (`POST /schedules/digest/run` too). */
export const digest = defineSchedule({
  name: "digest",
  cron: "0 3 * * *",
  action: { publish: "digests" },
});

/** `sum-squares` `{n}` → `{sum}`: Σ k² for k < n, split over the workers' threads. */
export const sumSquares = defineParallelTask({
  name: "sum-squares",
  input: v.object({ n: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(1e6)) }),
  worker: new URL("./workers/squares.ts", import.meta.url),
  split: ({ n }, { workerCount }) => {
    const size = Math.max(1, Math.ceil(n / workerCount));
    const chunks = [];
    for (let from = 0; from < n; from += size) chunks.push({ from, to: Math.min(n, from + size) });
    return chunks;
  },
  merge: (sums: number[]) => ({ sum: sums.reduce((a, b) => a + b, 0) }),
});

/** `POST /signups` publishes a signup; `GET /signups/{email}` shows what became of it. */
export const signupRoutes: RouteModule = (app, rt) => {
  app.post(
    "/signups",
    describeRoute({ summary: "Sign up", responses: { 202: { description: "Accepted" } } }),
    validate("json", Signup),
    async (c) => {
      const signup = c.req.valid("json");
      await rt.bus.publish("signups", [{ key: signup.email, value: JSON.stringify(signup) }]);
      return c.json({ accepted: true }, 202);
    },
  );
  app.get(
    "/signups/:email",
    describeRoute({
      summary: "A signup",
      responses: {
        200: {
          description: "What happened to it",
          content: jsonContent(v.object({ recorded: v.boolean(), welcomed: v.boolean() })),
        },
      },
    }),
    async (c) => {
      const [email, welcomed] = await rt.store.command(
        ["HMGET", signupKey(rt.config.keyPrefix, c.req.param("email")), "email", "welcomed"],
      ) as (string | null)[];
      return c.json({ recorded: email !== null, welcomed: welcomed === "1" });
    },
  );
};

/**
 * The whole service.
 *
 * @returns its definitions and routes
 */
export function signupsSystem(): System {
  return new System().add(welcome, signups, digest, sumSquares).routes(signupRoutes);
}
