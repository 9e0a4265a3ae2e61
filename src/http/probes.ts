/**
 * @module Probes every role serves: `/healthz`, `/readyz` and `/metrics`.
 */
import type { Hono } from "hono";
import { deadline } from "../async/deadline.ts";
import type { AppEnv } from "./env.ts";
import type { Check } from "../infra/store.ts";
import type { Runtime, Service } from "../runtime.ts";
import { holdsKey } from "./auth.ts";

/** The probe paths every role serves; deploy/k8s and its tests read them from here. */
export const PROBE_PATHS = { health: "/healthz", ready: "/readyz", metrics: "/metrics" } as const;

/** What stands for an address in a detail shown to a caller without a key. */
const HIDDEN = "<address>";

/**
 * A check's detail without what locates the dependency: URLs, `host:port`, IP addresses, and the
 * host name of a failed DNS lookup. `/readyz` is open to anyone; only a key holder sees more.
 *
 * @param detail the detail
 * @returns the detail with every address replaced by `<address>`
 */
export function withoutAddresses(detail: string): string {
  return detail
    .replace(/\b[a-z][a-z0-9+.-]*:\/\/\S+/gi, HIDDEN)
    .replace(/\[[0-9a-f:.]+\](:\d+)?/gi, HIDDEN)
    .replace(/(?<![\w:])(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}(?![\w:])/gi, HIDDEN)
    .replace(/\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b/g, HIDDEN)
    .replace(/\b[\w-]+(\.[\w-]+)*:\d{1,5}\b/g, HIDDEN)
    .replace(/\b(ENOTFOUND|EAI_AGAIN)\s+[^\s,;)]+/g, `$1 ${HIDDEN}`);
}

/** Most time one readiness check may take; a probe's timeout must be longer. */
export const CHECK_TIMEOUT_MS = 2000;

async function _bounded(check: () => Promise<Check>): Promise<Check> {
  try {
    return await deadline(check(), CHECK_TIMEOUT_MS, () => new Error("check timed out"));
  } catch (err) {
    return { ok: false, detail: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * Runs every readiness check: the store (`redis`), the bus (`kafka`), each service, and the
 * shutdown flag.
 *
 * @param rt the runtime
 * @param services the services of this process
 * @returns whether all pass, and each check's result
 */
export async function readiness(
  rt: Runtime,
  services: readonly Service[],
): Promise<{ ok: boolean; checks: Record<string, { status: "ok" | "failing"; detail?: string }> }> {
  const named: [string, () => Promise<Check>][] = [
    ["redis", () => rt.store.check()],
    ["kafka", () => rt.bus.check()],
    ...services.filter((s) => s.check).map((s) =>
      [s.name, () => s.check!()] as [string, () => Promise<Check>]
    ),
  ];
  const results = await Promise.all(named.map(([, check]) => _bounded(check)));
  const checks: Record<string, { status: "ok" | "failing"; detail?: string }> = {};
  named.forEach(([name], i) => {
    const r = results[i];
    checks[name] = r.ok
      ? {
        status: "ok",
        ...(rt.store.kind === "memory" && name === "redis" ? { detail: "embedded" } : {}),
      }
      : { status: "failing", detail: r.detail ?? "failing" };
  });
  if (rt.bus.kind === "memory") checks.kafka.detail ??= "embedded";
  if (rt.stopping) checks.shutdown = { status: "failing", detail: "shutting down" };
  return { ok: Object.values(checks).every((c) => c.status === "ok"), checks };
}

/**
 * Adds the probes to an app.
 *
 * @param app the app
 * @param rt the runtime
 * @param services the services of this process (read at each request)
 */
export function probeRoutes(
  app: Hono<AppEnv>,
  rt: Runtime,
  services: () => readonly Service[],
): void {
  app.get(PROBE_PATHS.health, (c) => c.json({ status: "ok" }));
  app.get(PROBE_PATHS.ready, async (c) => {
    const { ok, checks } = await readiness(rt, services());
    if (!holdsKey(c, rt.config.apiKeys)) {
      for (const check of Object.values(checks)) {
        if (check.detail !== undefined) check.detail = withoutAddresses(check.detail);
      }
    }
    if (ok) return c.json({ status: "ready", checks });
    const failing = Object.entries(checks).filter(([, v]) => v.status !== "ok").map(([k]) => k);
    return c.json({ status: "unavailable", failing, checks }, 503);
  });
  app.get(PROBE_PATHS.metrics, async (c) => {
    const text = await rt.metrics.metrics();
    return c.body(text, 200, { "content-type": rt.metrics.contentType });
  });
}
