/**
 * @module What a request must look like before any route sees it: bounded headers, JSON bodies
 * only, and no state-changing request from another site's page.
 */
import type { Context } from "hono";
import { problem } from "./problem.ts";

/** Longest single header value the app reads (nginx's default buffer is 8 KiB as well). */
export const MAX_HEADER_BYTES = 8 * 1024;
/** Most bytes of all header names and values together. */
export const MAX_HEADERS_TOTAL_BYTES = 32 * 1024;

/**
 * Longest a body-taking route waits for the request body (Deno.serve has no body timeout: a
 * client that sends part of its body holds the request open for ever).
 */
export const BODY_TIMEOUT_MS = 30_000;

const JSON_MEDIA = /^application\/([\w.-]+\+)?json$/i;
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Whether a `Content-Type` names JSON (`application/json` or `application/*+json`).
 *
 * @param contentType the header value
 * @returns true for JSON
 */
export function isJsonType(contentType: string | undefined): boolean {
  if (contentType === "application/json") return true; // most requests: no split, no regex
  return contentType !== undefined && JSON_MEDIA.test(contentType.split(";")[0].trim());
}

/**
 * Answers 415 problem+json unless the request's body is declared JSON.
 *
 * @param c the Hono context
 * @returns the 415 response, or undefined when the type is JSON
 */
export function unlessJson(c: Context): Response | undefined {
  const type = c.req.header("content-type");
  if (isJsonType(type)) return undefined;
  c.header("accept", "application/json");
  return problem(
    c,
    415,
    type === undefined
      ? "The request body must be JSON: send Content-Type: application/json"
      : `The request body must be JSON (Content-Type: application/json), not "${
        type.slice(0, 100)
      }"`,
  );
}

/** Body reads waiting, each with its deadline (epoch ms). */
const _bodyWaits = new Set<{ at: number; expire: () => void }>();
let _bodySweeper: ReturnType<typeof setInterval> | undefined;
/** How often body deadlines are checked: one timer for every read, not one per request. */
const BODY_SWEEP_MS = 50;

function _sweepBodies(): void {
  const now = Date.now();
  for (const wait of _bodyWaits) {
    if (wait.at > now) continue;
    _bodyWaits.delete(wait);
    wait.expire();
  }
}

/**
 * Reads the request body as JSON within the body timeout (the app's `bodyTimeoutMs`, else
 * {@link BODY_TIMEOUT_MS}).
 *
 * @param c the Hono context
 * @returns the parsed body, `undefined` when it is not valid JSON, or a 408 response
 */
export function jsonWithin(c: Context): Promise<unknown> {
  const ms = (c.get("bodyTimeoutMs") as number | undefined) ?? BODY_TIMEOUT_MS;
  if (_bodySweeper === undefined) {
    _bodySweeper = setInterval(_sweepBodies, BODY_SWEEP_MS);
    Deno.unrefTimer(_bodySweeper as unknown as number);
  }
  return new Promise((resolve) => {
    const wait = {
      at: Date.now() + ms,
      expire: () => resolve(problem(c, 408, `The request body did not arrive within ${ms} ms`)),
    };
    _bodyWaits.add(wait);
    // The body's own failure is "not JSON" (undefined), so only the bound answers otherwise.
    c.req.json().then(
      (body) => {
        _bodyWaits.delete(wait);
        resolve(body);
      },
      () => {
        _bodyWaits.delete(wait);
        resolve(undefined);
      },
    );
  });
}

function _headersTooLarge(c: Context): string | undefined {
  let total = 0;
  let large: string | undefined;
  // forEach rather than for…of: Deno's header iterator costs several µs a request.
  c.req.raw.headers.forEach((value, name) => {
    if (large === undefined && value.length > MAX_HEADER_BYTES) large = name;
    total += name.length + value.length;
  });
  if (large !== undefined) {
    return `The ${large.slice(0, 100)} header is longer than ${MAX_HEADER_BYTES} bytes`;
  }
  return total > MAX_HEADERS_TOTAL_BYTES
    ? `The request headers are larger than ${MAX_HEADERS_TOTAL_BYTES} bytes together`
    : undefined;
}

/** Whether a state-changing request comes from another site's page (Go's CrossOriginProtection). */
function _crossSite(c: Context): boolean {
  const site = c.req.header("sec-fetch-site");
  if (site !== undefined) return site !== "same-origin" && site !== "none";
  const origin = c.req.header("origin");
  if (origin === undefined) return false; // not a browser, or one too old to send either
  try {
    return new URL(origin).host !== (c.req.header("host") ?? new URL(c.req.url).host);
  } catch {
    return true; // "null" (sandboxed pages, file:) and malformed origins
  }
}

/**
 * The checks every request passes before a route sees it: 431 for oversized headers; for POST,
 * PUT, PATCH and DELETE, 403 when a browser says another site's page sent it, and 415 when a body
 * comes without a JSON content type. Routes that need a body also check its type
 * (`validate("json", …)`), so an empty non-JSON POST there is 415 too.
 *
 * @param c the Hono context
 * @returns the refusal, or undefined when the request may go on
 */
export function refuseRequest(c: Context): Response | undefined {
  const large = _headersTooLarge(c);
  if (large) return problem(c, 431, large);
  if (SAFE_METHODS.has(c.req.method)) return undefined;
  if (_crossSite(c)) {
    return problem(c, 403, "Cross-site requests may not change state on this service");
  }
  const type = c.req.header("content-type");
  const hasBody = (c.req.header("content-length") ?? "0") !== "0" ||
    c.req.header("transfer-encoding") !== undefined;
  return type !== undefined || hasBody ? unlessJson(c) : undefined;
}
