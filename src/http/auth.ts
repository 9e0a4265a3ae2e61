/**
 * @module API keys: the bearer check, and the dashboard's session cookie (an HMAC of the key,
 * never the key itself).
 */
import type { Context } from "hono";

/** The dashboard's session cookie. */
export const SESSION_COOKIE = "svc_session";
/** How long a dashboard session lasts. */
export const SESSION_TTL_S = 12 * 3600;
/**
 * The header the dashboard's own requests carry beside the session cookie. A page on another
 * site cannot send it without a CORS preflight, which this server never grants, so a cookie
 * alone never performs an action (CSRF).
 */
export const SESSION_HEADER = "x-svc-session";

const _encoder = new TextEncoder();

/** Compares two strings in time that depends only on their lengths. */
function _equal(a: string, b: string): boolean {
  const x = _encoder.encode(a);
  const y = _encoder.encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ (y[i % (y.length || 1)] ?? 0);
  return diff === 0;
}

/**
 * Whether `given` is one of the keys (every key is compared, so timing tells nothing).
 *
 * @param given the key the caller sent
 * @param keys `API_KEYS`
 * @returns true when it matches one
 */
export function isKey(given: string, keys: readonly string[]): boolean {
  let found = false;
  for (const key of keys) found = _equal(given, key) || found;
  return found;
}

/**
 * The bearer token of a request, if it sent one.
 *
 * @param c the Hono context
 * @returns the token, or undefined
 */
export function bearer(c: Context): string | undefined {
  const match = /^Bearer\s+(.+)$/i.exec(c.req.header("authorization") ?? "");
  return match ? match[1].trim() : undefined;
}

/**
 * Whether the request carries a valid `Authorization: Bearer` key.
 *
 * @param c the Hono context
 * @param keys `API_KEYS`
 * @returns true when it does
 */
export function holdsKey(c: Context, keys: readonly string[]): boolean {
  const token = bearer(c);
  return token !== undefined && keys.length > 0 && isKey(token, keys);
}

function _base64url(bytes: ArrayBuffer): string {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

async function _mac(key: string, expires: number): Promise<string> {
  const hmac = await crypto.subtle.importKey(
    "raw",
    _encoder.encode(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return _base64url(
    await crypto.subtle.sign("HMAC", hmac, _encoder.encode(`svc-dashboard-session:${expires}`)),
  );
}

/**
 * Makes a session value for a key: `<expiry>.<HMAC-SHA256 of the expiry under the key>`. It
 * reveals nothing of the key, holds on every replica that has the key, and dies with the key
 * (removing it from `API_KEYS` ends its sessions) or at its expiry.
 *
 * @param key a valid API key
 * @param now epoch ms
 * @returns the cookie value
 */
export async function sessionFor(key: string, now = Date.now()): Promise<string> {
  const expires = Math.floor(now / 1000) + SESSION_TTL_S;
  return `${expires}.${await _mac(key, expires)}`;
}

/**
 * Whether a session value was made by {@link sessionFor} for one of the keys and is not expired.
 *
 * @param value the cookie value
 * @param keys `API_KEYS`
 * @param now epoch ms
 * @returns true when valid
 */
export async function isSession(
  value: string,
  keys: readonly string[],
  now = Date.now(),
): Promise<boolean> {
  const match = /^(\d{1,12})\.([\w-]{43})$/.exec(value);
  if (!match) return false;
  const expires = Number(match[1]);
  if (expires * 1000 <= now) return false;
  let found = false;
  for (const key of keys) found = _equal(match[2], await _mac(key, expires)) || found;
  return found;
}

/**
 * Reads one cookie of a request.
 *
 * @param c the Hono context
 * @param name the cookie's name
 * @returns its value, or undefined
 */
export function cookie(c: Context, name: string): string | undefined {
  for (const part of (c.req.header("cookie") ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * Whether the request came over https (directly, or as an ingress says with
 * `X-Forwarded-Proto`), so a cookie set on it may be `Secure`.
 *
 * @param c the Hono context
 * @returns true over https
 */
export function overHttps(c: Context): boolean {
  const forwarded = c.req.header("x-forwarded-proto")?.split(",")[0].trim().toLowerCase();
  return forwarded === "https" || new URL(c.req.url).protocol === "https:";
}

/**
 * The `Set-Cookie` value of a session (an empty value and `Max-Age=0` ends it).
 *
 * @param value the session value, or "" to log out
 * @param secure whether to add `Secure`
 * @returns the header value
 */
export function sessionCookie(value: string, secure: boolean): string {
  const age = value === "" ? 0 : SESSION_TTL_S;
  return `${SESSION_COOKIE}=${value}; Path=/; Max-Age=${age}; HttpOnly; SameSite=Strict${
    secure ? "; Secure" : ""
  }`;
}
