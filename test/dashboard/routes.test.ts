import { test } from "uvu";
import * as assert from "uvu/assert";
import { createApp } from "../../src/app.ts";
import { isSession, SESSION_TTL_S, sessionFor } from "../../src/http/auth.ts";
import { exampleSystem } from "../../src/example/mod.ts";
import { taskClient } from "../../src/tasks/client.ts";
import { backends, cleanup, testRuntime } from "../helpers.ts";

test.after(cleanup);

for (const backend of backends()) {
  const make = (env: Record<string, string> = {}) => {
    const rt = testRuntime({ redis: backend.name === "redis", system: exampleSystem(), env });
    return { rt, app: createApp(rt, { api: true, services: () => [], routes: [] }) };
  };

  test(`[${backend.name}] GET /dashboard renders tasks, parallel runs, schedules and consumers`, async () => {
    const { rt, app } = make();
    const { refcode } = await taskClient(rt).enqueue("sleep", { ms: 10 });
    const res = await app.request("/dashboard");
    assert.is(res.status, 200);
    assert.match(res.headers.get("content-type")!, /text\/html/);
    const page = await res.text();
    for (const id of ["tasks", "parallel", "schedules", "consumers"]) {
      assert.match(page, `<section id="${id}">`);
    }
    assert.match(page, `data-refcode="${refcode}" data-status="queued"`);
    assert.match(page, 'data-schedule="orders-report-nightly"');
    assert.match(page, 'data-consumer="events"');
    assert.match(page, `data-url="/tasks/${refcode}"`);
  });

  test(`[${backend.name}] the dashboard escapes what it shows`, async () => {
    const { rt, app } = make();
    const { refcode } = await taskClient(rt).enqueue("sleep", { ms: 10 });
    await rt.store.command([
      "HSET",
      `${rt.config.keyPrefix}:{t:${refcode}}:task`,
      "error",
      "<script>x</script>",
    ]).catch(() => {});
    const page = await (await app.request("/dashboard")).text();
    assert.not.match(page, "<script>x</script>");
  });

  test(`[${backend.name}] GET /dashboard/stream sends the sections as server-sent events`, async () => {
    const { app } = make();
    const controller = new AbortController();
    const res = await app.request("/dashboard/stream", { signal: controller.signal });
    assert.is(res.status, 200);
    assert.match(res.headers.get("content-type")!, /text\/event-stream/);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n\n")) text += (await reader.read()).value ?? "";
    assert.match(text, /^event: sections\ndata: .*<section id="tasks">/);
    controller.abort();
    await reader.cancel();
  });

  test(`[${backend.name}] with API_KEYS the dashboard asks for the key and opens an opaque HttpOnly session`, async () => {
    const { app } = make({ API_KEYS: "k1" });
    const denied = await app.request("/dashboard");
    assert.is(denied.status, 401);
    assert.match(await denied.text(), /API key/);
    // The raw key in a cookie (what the page stored before) opens nothing.
    assert.is(
      (await app.request("/dashboard", { headers: { cookie: "svc_api_key=k1" } })).status,
      401,
    );
    const login = (key: string, url = "http://svc/dashboard/login", headers = {}) =>
      app.request(url, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ key }),
      });
    assert.is((await login("nope")).status, 401);
    const ok = await login("k1");
    assert.is(ok.status, 204);
    const set = ok.headers.get("set-cookie")!;
    assert.match(set, /^svc_session=\d+\.[\w-]{43}; /);
    assert.not.match(set, /k1/);
    for (const attribute of ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="]) {
      assert.ok(set.includes(attribute), `${attribute} in ${set}`);
    }
    assert.not.ok(set.includes("Secure"), "plain http: not Secure");
    assert.ok(
      (await login("k1", "https://svc/dashboard/login")).headers.get("set-cookie")!.includes(
        "; Secure",
      ),
    );
    assert.ok(
      (await login("k1", undefined, { "x-forwarded-proto": "https" })).headers.get("set-cookie")!
        .includes("; Secure"),
    );
    const session = set.split(";")[0];
    const page = await app.request("/dashboard", { headers: { cookie: `a=b; ${session}` } });
    assert.is(page.status, 200);
    assert.match(await page.text(), 'id="logout"');
    // A tampered or foreign session opens nothing.
    const [name, value] = session.split("=");
    const forged = `${name}=${value.slice(0, -2)}${value.endsWith("A") ? "B" : "A"}A`;
    assert.is((await app.request("/dashboard", { headers: { cookie: forged } })).status, 401);
    // The cookie alone never reaches the API (a link or form on another site would send it);
    // with the dashboard's header it does.
    assert.is(
      (await app.request("/tasks?status=failed", { headers: { cookie: session } })).status,
      401,
    );
    assert.is(
      (await app.request("/tasks?status=failed", {
        headers: { cookie: session, "x-svc-session": "1" },
      })).status,
      200,
    );
    const out = await app.request("/dashboard/logout", {
      method: "POST",
      headers: { cookie: session },
    });
    assert.is(out.status, 204);
    assert.match(
      out.headers.get("set-cookie")!,
      /^svc_session=; Path=\/; Max-Age=0; HttpOnly; SameSite=Strict/,
    );
  });
}

test("isSession() refuses an expired session, and one of a removed key", async () => {
  const value = await sessionFor("k1", 1_000_000);
  assert.ok(await isSession(value, ["k1"], 1_000_000));
  assert.not.ok(await isSession(value, ["k1"], 1_000_000 + SESSION_TTL_S * 1000));
  assert.not.ok(await isSession(value, ["k2"], 1_000_000));
  assert.not.ok(await isSession("k1", ["k1"], 1_000_000));
});

test.run();
