import { test } from "uvu";
import * as assert from "uvu/assert";
import * as v from "valibot";
import { createApp } from "../../src/app.ts";
import { System } from "../../src/system.ts";
import { defineTask } from "../../src/tasks/define.ts";
import { taskClient } from "../../src/tasks/client.ts";
import { QueueFullError } from "../../src/tasks/errors.ts";
import { TaskWorker } from "../../src/tasks/worker.ts";
import { backends, claimAll, cleanup, onCleanup, testRuntime } from "../helpers.ts";

test.after(cleanup);

const echo = defineTask({
  name: "echo",
  input: v.strictObject({ n: v.pipe(v.number(), v.integer(), v.minValue(0)) }),
  attempts: 1,
  handler: ({ n }) => {
    if (n === 13) throw new Error("unlucky");
    return { n };
  },
});
const other = defineTask({ name: "other", input: v.object({}), handler: () => null });

const post = (body: unknown, headers: Record<string, string> = {}) => ({
  method: "POST",
  body: typeof body === "string" ? body : JSON.stringify(body),
  headers: { "content-type": "application/json", ...headers },
});

for (const backend of backends()) {
  const name = (s: string) => `[${backend.name}] ${s}`;
  const make = () => {
    const rt = testRuntime({
      redis: backend.name === "redis",
      system: new System().add(echo, other),
    });
    return { rt, app: createApp(rt, { api: true, services: () => [], routes: [] }) };
  };
  const withWorker = async () => {
    const made = make();
    const worker = new TaskWorker(made.rt);
    await worker.start();
    onCleanup(() => worker.stop(Date.now() + 2000));
    return made;
  };

  test(name("POST /tasks/{type} answers 202 with Location and Retry-After"), async () => {
    const { app } = make();
    const res = await app.request("/tasks/echo", post({ n: 1 }));
    assert.is(res.status, 202);
    const body = await res.json();
    assert.match(body.refcode, /^t_[a-z2-7]{26}$/);
    assert.equal(body, {
      refcode: body.refcode,
      type: "echo",
      status: "queued",
      status_url: `/tasks/${body.refcode}`,
    });
    assert.is(res.headers.get("location"), `/tasks/${body.refcode}`);
    assert.is(res.headers.get("retry-after"), "1");
    const got = await app.request(`/tasks/${body.refcode}`);
    assert.is(got.status, 200);
    const view = await got.json();
    assert.equal(Object.keys(view).sort(), [
      "attempts",
      "created_at",
      "error",
      "progress",
      "refcode",
      "result",
      "status",
      "type",
      "updated_at",
    ]);
    assert.equal(
      [view.status, view.progress, view.result, view.error, view.attempts],
      ["queued", null, null, null, 0],
    );
    assert.ok(!Number.isNaN(Date.parse(view.created_at)) && view.created_at.endsWith("Z"));
  });

  test(name("unknown type → 404; bad input → 400 with issues; bad JSON → 400"), async () => {
    const { app } = make();
    const unknown = await app.request("/tasks/nope", post({}));
    assert.is(unknown.status, 404);
    assert.is(unknown.headers.get("content-type"), "application/problem+json");
    const bad = await app.request("/tasks/echo", post({ n: -1 }));
    assert.is(bad.status, 400);
    const problem = await bad.json();
    assert.is(problem.issues[0].path, "n");
    assert.is((await app.request("/tasks/echo", post({ n: 1, x: 2 }))).status, 400);
    assert.is((await app.request("/tasks/echo", post("{nope"))).status, 400);
  });

  test(name("unknown, malformed and expired refcodes → 404 on every route"), async () => {
    const { app } = make();
    for (const ref of ["t_" + "a".repeat(26), "nope", "t_x"]) {
      assert.is((await app.request(`/tasks/${ref}`)).status, 404);
      assert.is((await app.request(`/tasks/${ref}?wait=1`)).status, 404);
      assert.is((await app.request(`/tasks/${ref}`, { method: "DELETE" })).status, 404);
      assert.is((await app.request(`/tasks/${ref}/retry`, { method: "POST" })).status, 404);
    }
  });

  test(
    name("Idempotency-Key: same body → same refcode, other body → 409 naming no task"),
    async () => {
      const { app } = make();
      const key = { "idempotency-key": crypto.randomUUID() };
      const a = await (await app.request("/tasks/echo", post({ n: 1 }, key))).json();
      const again = await app.request("/tasks/echo", post({ n: 1 }, key));
      assert.is(again.status, 202);
      assert.is((await again.json()).refcode, a.refcode);
      assert.is(again.headers.get("idempotent-replayed"), "true");
      const conflict = await app.request("/tasks/echo", post({ n: 2 }, key));
      assert.is(conflict.status, 409);
      assert.not.match(await conflict.text(), /t_[a-z2-7]{26}/);
      // Keys are scoped per type: the same key for another type is another request.
      const otherType = await app.request("/tasks/other", post({}, key));
      assert.is(otherType.status, 202);
      assert.is.not((await otherType.json()).refcode, a.refcode);
      const fresh = await app.request("/tasks/echo", post({ n: 1 }, { "idempotency-key": "k2" }));
      assert.is.not((await fresh.json()).refcode, a.refcode);
      assert.is(
        (await app.request("/tasks/echo", post({ n: 1 }, { "idempotency-key": "" })))
          .status,
        400,
      );
    },
  );

  test(
    name("Idempotency-Keys are scoped per API key: another caller's key is theirs alone"),
    async () => {
      const rt = testRuntime({
        redis: backend.name === "redis",
        system: new System().add(echo),
        env: { API_KEYS: "alice,bob" },
      });
      const app = createApp(rt, { api: true, services: () => [], routes: [] });
      const key = { "idempotency-key": crypto.randomUUID() };
      const as = (who: string, n: number) =>
        app.request("/tasks/echo", post({ n }, { ...key, authorization: `Bearer ${who}` }));
      const alice = await as("alice", 1);
      assert.is(alice.status, 202);
      const aliceRef = (await alice.json()).refcode;
      // Bob reuses Alice's key with another body: his own new task, not a 409 naming hers.
      const bob = await as("bob", 2);
      assert.is(bob.status, 202);
      const bobRef = (await bob.json()).refcode;
      assert.is.not(bobRef, aliceRef);
      // With the same body too: still his own.
      const bobSame = await as("bob", 2);
      assert.is((await bobSame.json()).refcode, bobRef);
      assert.is((await (await as("bob", 1)).text()).includes(aliceRef), false);
      assert.is((await (await as("alice", 1)).json()).refcode, aliceRef);
    },
  );

  test(
    name("a type at its maxQueued answers 429 with Retry-After until a task leaves"),
    async () => {
      const capped = defineTask({
        name: "capped",
        input: v.object({}),
        maxQueued: 3,
        handler: () => null,
      });
      const rt = testRuntime({ redis: backend.name === "redis", system: new System().add(capped) });
      const app = createApp(rt, { api: true, services: () => [], routes: [] });
      const statuses = [];
      for (let i = 0; i < 5; i++) {
        statuses.push((await app.request("/tasks/capped", post({}))).status);
      }
      assert.equal(statuses, [202, 202, 202, 429, 429]);
      const full = await app.request("/tasks/capped", post({}));
      assert.is(full.status, 429);
      assert.is(full.headers.get("content-type"), "application/problem+json");
      assert.ok(Number(full.headers.get("retry-after")) > 0);
      const problem = await full.json();
      assert.match(problem.detail, /3 tasks waiting \(its maxQueued\)/);
      assert.is(problem.limit, 3);
      // Another process sees the same cap (it is counted in the store).
      const rt2 = testRuntime({
        redis: backend.name === "redis",
        system: new System().add(capped),
        store: rt.store,
        env: { KEY_PREFIX: rt.config.keyPrefix },
      });
      const refused = await taskClient(rt2).enqueue("capped", {}).catch((err) => err);
      assert.instance(refused, QueueFullError);
    },
  );

  test(name("DELETE of a queued task → 202 cancelled; again → 409"), async () => {
    const { app } = make();
    const { refcode } = await (await app.request("/tasks/echo", post({ n: 1 }))).json();
    const res = await app.request(`/tasks/${refcode}`, { method: "DELETE" });
    assert.is(res.status, 202);
    assert.is((await res.json()).status, "cancelled");
    const again = await app.request(`/tasks/${refcode}`, { method: "DELETE" });
    assert.is(again.status, 409);
    assert.match((await again.json()).detail, /it is cancelled/);
  });

  test(name("GET ?wait=N answers when the task completes, woken by its notification"), async () => {
    const { app, rt } = make();
    const { refcode } = await (await app.request("/tasks/echo", post({ n: 7 }))).json();
    const started = Date.now();
    const waiting = app.request(`/tasks/${refcode}?wait=20`);
    setTimeout(async () => {
      const broker = taskClient(rt).broker;
      const [task] = await claimAll(broker, [["echo", 1]], 5000, "w.1", "w");
      await broker.finish([
        { refcode, type: "echo", token: task.token, outcome: { kind: "ok", result: "7" } },
      ]);
    }, 200);
    const res = await waiting;
    const view = await res.json();
    assert.equal([view.status, view.result], ["completed", 7]);
    // The backstop re-read comes after 5 s; an answer before it came from the notification.
    assert.ok(Date.now() - started < 4000, `answered after ${Date.now() - started} ms`);
    assert.is(res.headers.get("retry-after"), null);
  });

  test(name("GET ?wait=N answers after N seconds when nothing happens; N > 30 → 400"), async () => {
    const { app } = make();
    const { refcode } = await (await app.request("/tasks/echo", post({ n: 1 }))).json();
    const started = Date.now();
    const res = await app.request(`/tasks/${refcode}?wait=0.3`);
    assert.is((await res.json()).status, "queued");
    assert.ok(Date.now() - started >= 290);
    assert.is(res.headers.get("retry-after"), "1");
    assert.is((await app.request(`/tasks/${refcode}?wait=31`)).status, 400);
    assert.is((await app.request(`/tasks/${refcode}?wait=soon`)).status, 400);
  });

  test(
    name("failed tasks are listed by GET /tasks?status=failed and retried by POST …/retry"),
    async () => {
      const { app } = await withWorker();
      const bad = await (await app.request("/tasks/echo", post({ n: 13 }))).json();
      const good = await (await app.request("/tasks/echo", post({ n: 2 }))).json();
      const failed = await (await app.request(`/tasks/${bad.refcode}?wait=10`)).json();
      assert.equal([failed.status, failed.error, failed.attempts], ["failed", "unlucky", 1]);
      const done = await (await app.request(`/tasks/${good.refcode}?wait=10`)).json();
      assert.is(done.status, "completed");
      const list = await (await app.request("/tasks?status=failed")).json();
      assert.equal(list.map((t: { refcode: string }) => t.refcode), [bad.refcode]);
      assert.equal(await (await app.request("/tasks?status=failed&type=other")).json(), []);
      assert.equal(
        (await (await app.request("/tasks?status=completed&type=echo&limit=1")).json()).length,
        1,
      );
      assert.is((await app.request("/tasks?status=nope")).status, 400);
      assert.is((await app.request("/tasks?status=failed&limit=0")).status, 400);
      const every = await (await app.request("/tasks")).json();
      assert.equal(
        every.map((t: { refcode: string }) => t.refcode).sort(),
        [bad.refcode, good.refcode].sort(),
        "without status: the newest of every status",
      );
      assert.equal(
        (await (await app.request("/tasks?limit=1")).json()).map((t: { status: string }) =>
          t.status
        ).length,
        1,
      );
      assert.is(
        (await app.request(`/tasks/${good.refcode}/retry`, { method: "POST" })).status,
        409,
      );
      assert.is((await app.request(`/tasks/${good.refcode}`, { method: "DELETE" })).status, 409);
      const retried = await app.request(`/tasks/${bad.refcode}/retry`, { method: "POST" });
      assert.is(retried.status, 202);
      const view = await retried.json();
      assert.equal([view.status, view.attempts, view.error], ["queued", 0, null]);
      const again = await (await app.request(`/tasks/${bad.refcode}?wait=10`)).json();
      assert.equal([again.status, again.attempts], ["failed", 1]);
    },
  );

  test(name("/openapi.json documents every task route and each type's input"), async () => {
    const { app } = make();
    const doc = await (await app.request("/openapi.json")).json();
    for (const path of ["/tasks/echo", "/tasks/other", "/tasks/{type}", "/tasks"]) {
      assert.ok(doc.paths[path], `missing ${path}`);
    }
    assert.ok(doc.paths["/tasks/{refcode}"].get && doc.paths["/tasks/{refcode}"].delete);
    assert.ok(doc.paths["/tasks/{refcode}/retry"].post);
    const body = doc.paths["/tasks/echo"].post.requestBody.content["application/json"].schema;
    assert.ok(JSON.stringify(body).includes('"n"'), JSON.stringify(body));
  });
}

test("every task route answers 503, never 500, while the store is down", async () => {
  const rt = testRuntime({
    env: { REDIS_URL: "redis://127.0.0.1:1" },
    system: new System().add(echo),
  });
  const app = createApp(rt, { api: true, services: () => [], routes: [] });
  const ref = "t_" + "a".repeat(26);
  const requests: [string, RequestInit?][] = [
    ["/tasks/echo", post({ n: 1 })],
    ["/tasks/echo", post({ n: 1 }, { "idempotency-key": "k" })],
    [`/tasks/${ref}`],
    [`/tasks/${ref}?wait=1`],
    [`/tasks/${ref}`, { method: "DELETE" }],
    [`/tasks/${ref}/retry`, { method: "POST" }],
    ["/tasks?status=failed"],
  ];
  for (const [path, init] of requests) {
    const res = await app.request(path, init);
    assert.is(res.status, 503, `${init?.method ?? "GET"} ${path}`);
    assert.is(res.headers.get("content-type"), "application/problem+json");
  }
});

test.run();
