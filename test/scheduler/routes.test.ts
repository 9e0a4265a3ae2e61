import { suite } from "uvu";
import * as assert from "uvu/assert";
import { backends, cleanup, onCleanup, testRuntime, waitFor } from "../helpers.ts";
import { createApp } from "../../src/app.ts";
import type { Runtime } from "../../src/runtime.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { ScheduleStore } from "../../src/scheduler/store.ts";
import { scheduleSystem } from "./fixtures/schedules.ts";

for (const backend of backends()) {
  const test = suite(`schedule routes on ${backend.name}`);
  test.after(cleanup);

  const setup = async (env: Record<string, string> = {}) => {
    const rt = testRuntime({ redis: backend.name === "redis", system: scheduleSystem(), env });
    await waitFor(async () => (await rt.store.check()).ok, 5000, "store");
    const app = createApp(rt, { api: true, services: () => [], routes: [] });
    return { rt, app, store: new ScheduleStore(rt.store, rt.config.keyPrefix) };
  };

  test("GET /schedules lists each schedule with its next and last run", async () => {
    const { app, store } = await setup({ SCHEDULE_NY_CRON: "off" });
    const before = Date.now();
    const res = await app.request("/schedules");
    assert.is(res.status, 200);
    const list = await res.json();
    assert.equal(list.map((s: { name: string }) => s.name), [
      "heartbeat",
      "orders-report-nightly",
      "ny",
    ]);
    const [beat, nightly, ny] = list;
    assert.equal(Object.keys(beat), [
      "name",
      "cron",
      "timezone",
      "enabled",
      "next_run_at",
      "last_run",
    ]);
    assert.is(beat.cron, "*/30 * * * * *");
    assert.is(beat.timezone, "UTC");
    assert.is(beat.enabled, true);
    const next = Date.parse(beat.next_run_at);
    assert.ok(next > before && next <= before + 30_000 && next % 30_000 === 0);
    assert.is(beat.last_run, null);
    assert.match(nightly.next_run_at, /T02:00:00\.000Z$/);
    assert.equal({ enabled: ny.enabled, next: ny.next_run_at, tz: ny.timezone }, {
      enabled: false,
      next: null,
      tz: "America/New_York",
    });
    await store.queueManual("heartbeat", "m1", Date.parse("2025-01-01T00:00:00Z"));
    const again = await (await app.request("/schedules")).json();
    assert.equal(again[0].last_run, {
      scheduled_at: "2025-01-01T00:00:00.000Z",
      started_at: null,
      finished_at: null,
      status: "queued",
      replica: null,
    });
  });

  test("GET /schedules/{name}/runs returns the newest first, limited", async () => {
    const { app, store } = await setup();
    const t0 = Date.parse("2025-01-01T00:00:00Z");
    for (let i = 0; i < 5; i++) {
      await store.begin("heartbeat", {
        id: `r${i}`,
        claimUpTo: t0 + i * 30_000,
        lock: "allow",
        leaseMs: 30_000,
        now: t0 + i * 30_000 + 2,
        record: {
          trigger: "schedule",
          scheduledAt: t0 + i * 30_000,
          startedAt: t0 + i * 30_000 + 2,
          finishedAt: null,
          status: "running",
          replica: "host-1",
        },
      });
      await store.finish("heartbeat", `r${i}`, "host-1", {
        status: "completed",
        finishedAt: t0 + i * 30_000 + 5,
        refcode: i === 4 ? "ref-4" : undefined,
      });
    }
    const res = await app.request("/schedules/heartbeat/runs?limit=2");
    assert.is(res.status, 200);
    assert.equal(await res.json(), [
      {
        scheduled_at: "2025-01-01T00:02:00.000Z",
        started_at: "2025-01-01T00:02:00.002Z",
        finished_at: "2025-01-01T00:02:00.005Z",
        status: "completed",
        replica: "host-1",
        refcode: "ref-4",
      },
      {
        scheduled_at: "2025-01-01T00:01:30.000Z",
        started_at: "2025-01-01T00:01:30.002Z",
        finished_at: "2025-01-01T00:01:30.005Z",
        status: "completed",
        replica: "host-1",
      },
    ]);
    assert.is((await (await app.request("/schedules/heartbeat/runs")).json()).length, 5);
    assert.equal(await (await app.request("/schedules/ny/runs")).json(), []);
  });

  test("schedule routes answer problem+json: 404 unknown, 400 bad limit", async () => {
    const { app } = await setup();
    for (
      const [method, path, status] of [
        ["GET", "/schedules/nope/runs", 404],
        ["POST", "/schedules/nope/run", 404],
        ["GET", "/schedules/heartbeat/runs?limit=0", 400],
        ["GET", "/schedules/heartbeat/runs?limit=101", 400],
        ["GET", "/schedules/heartbeat/runs?limit=abc", 400],
      ] as const
    ) {
      const res = await app.request(path, { method });
      assert.is(res.status, status, path);
      assert.is(res.headers.get("content-type"), "application/problem+json");
      const body = await res.json();
      assert.is(body.status, status);
      if (status === 404) assert.match(body.detail, /Schedule "nope" does not exist/);
      if (status === 400) assert.is(body.issues[0].path, "limit");
    }
  });

  test("POST /schedules/{name}/run answers 202 and runs once on one of three replicas", async () => {
    const { rt, app } = await setup();
    const refcodes: string[] = [];
    const replicas: Runtime[] = [rt];
    for (let i = 0; i < 2; i++) {
      replicas.push(testRuntime({
        redis: backend.name === "redis",
        system: scheduleSystem(),
        env: { KEY_PREFIX: rt.config.keyPrefix },
        store: backend.name === "redis" ? undefined : rt.store,
      }));
    }
    const schedulers = replicas.map((r, i) =>
      new Scheduler(r, {
        replica: `replica-${i}`,
        manualPollMs: 100,
        enqueue: (_rt, type) => {
          refcodes.push(typeof type === "string" ? type : type.name);
          return Promise.resolve(`ref-${refcodes.length}`);
        },
      })
    );
    onCleanup(() => Promise.all(schedulers.map((s) => s.stop(Date.now()))).then(() => {}));
    for (const s of schedulers) await s.start();
    const res = await app.request("/schedules/orders-report-nightly/run", { method: "POST" });
    assert.is(res.status, 202);
    assert.is(res.headers.get("location"), "/schedules/orders-report-nightly/runs");
    const queued = await res.json();
    assert.is(queued.status, "queued");
    const list = async () => (await app.request("/schedules/orders-report-nightly/runs")).json();
    await waitFor(async () => (await list())[0]?.status === "completed", 5000, "the manual run");
    // Every replica has looked for requests since, and its runs have ended: a second run of
    // the request would show now.
    await Promise.all(schedulers.map((s) => s.idle()));
    const runs = await list();
    assert.is(runs.length, 1);
    assert.is(runs[0].scheduled_at, queued.scheduled_at);
    assert.is(runs[0].refcode, "ref-1");
    assert.match(runs[0].replica, /^replica-\d$/);
    assert.equal(refcodes, ["orders-report"]);
  });

  test("GET /openapi.json documents the schedule routes", async () => {
    const { app } = await setup();
    const doc = await (await app.request("/openapi.json")).json();
    assert.ok(doc.paths["/schedules"]?.get);
    assert.ok(doc.paths["/schedules/{name}/runs"]?.get);
    assert.ok(doc.paths["/schedules/{name}/run"]?.post);
  });

  test.run();
}
