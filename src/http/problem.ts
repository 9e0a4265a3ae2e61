/**
 * @module RFC 9457 problem details: the one shape of every error answer.
 */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/** One validation issue: where and what. */
export interface Issue {
  /** Where: a dotted path into the input (`items.0.qty`), empty for the whole input. */
  path: string;
  /** What is wrong there. */
  message: string;
}

const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

// deno-fmt-ignore
/** The status of a problem: a client error (4xx) or a server error (5xx). */
export type ErrorStatus =
  | 400 | 401 | 402 | 403 | 404 | 405 | 406 | 407 | 408 | 409 | 410 | 411 | 412 | 413 | 414
  | 415 | 416 | 417 | 418 | 421 | 422 | 423 | 424 | 425 | 426 | 428 | 429 | 431 | 451
  | 500 | 501 | 502 | 503 | 504 | 505 | 506 | 507 | 508 | 510 | 511;

/** An error a handler throws to answer with a problem document. */
export class HttpProblem extends Error {
  /**
   * Creates the problem to answer.
   *
   * @param status HTTP status
   * @param detail what went wrong, for the client
   * @param extra more members (e.g. `issues`)
   * @param headers response headers (e.g. `retry-after` of a 429)
   */
  constructor(
    readonly status: ErrorStatus,
    readonly detail: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
    this.name = "HttpProblem";
  }
}

/**
 * Answers with `application/problem+json`.
 *
 * @param c the Hono context
 * @param status HTTP status
 * @param detail human-readable explanation
 * @param extra more members
 * @returns the response
 */
export function problem(
  c: Context,
  status: ContentfulStatusCode,
  detail: string,
  extra: Record<string, unknown> = {},
): Response {
  const body = {
    type: "about:blank",
    title: TITLES[status] ?? "Error",
    status,
    detail,
    instance: c.req.path,
    ...(c.get("requestId") ? { request_id: c.get("requestId") } : {}),
    ...extra,
  };
  return c.body(JSON.stringify(body), status, { "content-type": "application/problem+json" });
}
