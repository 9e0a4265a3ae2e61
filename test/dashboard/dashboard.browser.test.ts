/**
 * The dashboard in a real headless Chromium (Debian's, driven by playwright-core): a running
 * task's progress advances, its cancel button makes it `cancelled`, and a screenshot is kept
 * in `artifacts/dashboard.png`.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { chromium } from "playwright-core";
import { cleanup, onCleanup, ROOT, spawnProgram, unique, waitFor } from "../helpers.ts";

test.after(cleanup);

const KEY = "dash-key";

test("dashboard shows a task's progress advancing, cancels it, and is captured", async () => {
  const p = await spawnProgram({ KEY_PREFIX: unique("t"), API_KEYS: KEY }, { timeoutMs: 60_000 });
  const auth = { authorization: `Bearer ${KEY}`, "content-type": "application/json" };
  const res = await fetch(`${p.url}/tasks/sleep`, {
    method: "POST",
    headers: auth,
    body: JSON.stringify({ ms: 20_000 }),
  });
  assert.is(res.status, 202);
  const { refcode } = await res.json();

  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  onCleanup(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();

  // Without the key: the login form, not the data.
  const denied = await page.goto(`${p.url}/dashboard`);
  assert.is(denied?.status(), 401);
  await page.fill("#k", KEY);
  await page.click("button");
  await page.waitForSelector(`tr[data-refcode="${refcode}"][data-status="in_progress"]`, {
    timeout: 15_000,
  });

  const progress = () =>
    page.$eval(
      `tr[data-refcode="${refcode}"] progress`,
      (el) => Number((el as unknown as { value: number }).value),
    );
  const first = await waitFor(progress, 10_000, "a progress value");
  // The page is never reloaded: server-sent events replace the rows.
  const later = await waitFor(
    async () => {
      const v = await progress().catch(() => 0);
      return v > first ? v : 0;
    },
    15_000,
    "progress to advance",
  );
  assert.ok(later > first, `${later} > ${first}`);

  await Deno.mkdir(`${ROOT}artifacts`, { recursive: true });
  await page.screenshot({ path: `${ROOT}artifacts/dashboard.png`, fullPage: true });

  page.once("dialog", (d) => d.accept());
  await page.click(`tr[data-refcode="${refcode}"] button[data-method="DELETE"]`);
  await page.waitForSelector(`tr[data-refcode="${refcode}"][data-status="cancelled"]`, {
    timeout: 10_000,
  });
  const task = await (await fetch(`${p.url}/tasks/${refcode}`, { headers: auth })).json();
  assert.is(task.status, "cancelled");
  await browser.close();
  assert.is((await p.stop()).code, 0);
});

test.run();
