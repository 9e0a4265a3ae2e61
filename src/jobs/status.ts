/**
 * @module The statuses of a job (an async task or a parallel run), and which of them are final.
 */

/** Every status, in the order a job goes through them. */
export const JOB_STATUSES = ["queued", "in_progress", "completed", "failed", "cancelled"] as const;

/** Where a job is: `queued`, `in_progress`, `completed`, `failed` or `cancelled`. */
export type JobStatus = typeof JOB_STATUSES[number];

/** The statuses after which nothing changes. */
export const TERMINAL_STATUSES: ReadonlySet<JobStatus> = new Set<JobStatus>([
  "completed",
  "failed",
  "cancelled",
]);

/**
 * Whether a status is final.
 *
 * @param status a status as stored (any string)
 * @returns true for `completed`, `failed` and `cancelled`
 */
export function isTerminal(status: string): status is "completed" | "failed" | "cancelled" {
  return TERMINAL_STATUSES.has(status as JobStatus);
}
