/**
 * @module The only reader of environment variables: API.md's table, validated with valibot.
 */
import * as v from "valibot";
import { parseRedisUrl } from "./infra/redis-url.ts";

/** Every role the program can take. */
export const ROLES = [
  "http",
  "consumer",
  "bulk-consumer",
  "scheduler",
  "async-worker",
  "parallel-worker",
] as const;

/** One role name. */
export type Role = typeof ROLES[number];

/** Start-up configuration, read once from the environment. */
export interface Config {
  roles: Role[];
  port: number;
  redisUrl: string | undefined;
  /** PEM text of `REDIS_TLS_CA_FILE`, read at start-up. */
  redisTlsCa: string | undefined;
  redisWaitReplicas: number;
  redisWaitTimeoutMs: number;
  kafkaBrokers: string[] | undefined;
  keyPrefix: string;
  topicPrefix: string;
  apiKeys: string[];
  logLevel: "debug" | "info" | "warn" | "error";
  parallelMaxWorkers: number;
  shutdownTimeoutMs: number;
  /** `SCHEDULE_<NAME>_CRON` overrides, keyed by the upper-cased name (`-` → `_`). */
  scheduleCron: Record<string, string>;
}

/** A bad environment value; start-up prints `message` on one line and exits 2. */
export class ConfigError extends Error {
  /**
   * @param variable the environment variable at fault
   * @param problem what is wrong with it
   */
  constructor(readonly variable: string, problem: string) {
    super(`${variable}: ${problem}`);
    this.name = "ConfigError";
  }
}

const intIn = (min: number, max: number) =>
  v.pipe(
    v.string(),
    v.trim(),
    v.regex(/^\d+$/, `must be an integer from ${min} to ${max}`),
    v.transform(Number),
    v.minValue(min, `must be an integer from ${min} to ${max}`),
    v.maxValue(max, `must be an integer from ${min} to ${max}`),
  );

let _redisUrlProblem = "";
const redisUrl = v.pipe(
  v.string(),
  v.check((s) => {
    try {
      parseRedisUrl(s);
      return true;
    } catch (err) {
      _redisUrlProblem = (err as Error).message;
      return false;
    }
  }, () => _redisUrlProblem),
);

const pemFile = v.pipe(
  v.string(),
  v.transform((path) => {
    try {
      return { path, text: Deno.readTextFileSync(path) };
    } catch (err) {
      return { path, text: "", error: (err as Error).message };
    }
  }),
  v.check(
    (f) => !("error" in f),
    (issue) => `cannot read ${(issue.input as { path: string }).path}`,
  ),
  v.check(
    (f) => f.text.includes("-----BEGIN CERTIFICATE-----"),
    (issue) => `${(issue.input as { path: string }).path} holds no PEM certificate`,
  ),
  v.transform((f) => f.text),
);

const brokers = v.pipe(
  v.string(),
  v.transform((s) => s.split(",").map((b) => b.trim()).filter((b) => b !== "")),
  v.check((list) => list.length > 0, "must name at least one host:port"),
  v.check(
    (list) => list.every((b) => /^[A-Za-z0-9.\-_\[\]:]+:\d{1,5}$/.test(b)),
    "must be a comma list of host:port",
  ),
);

const roles = v.pipe(
  v.string(),
  v.transform((s) => s.split(",").map((r) => r.trim()).filter((r) => r !== "")),
  v.check((list) => list.length > 0, "must name at least one role"),
  v.check(
    (list) => list.every((r) => r === "all" || (ROLES as readonly string[]).includes(r)),
    `must be "all" or a comma list of ${ROLES.join(", ")}`,
  ),
  v.transform((list) => list.includes("all") ? [...ROLES] : [...new Set(list)] as Role[]),
);

const FIELDS = {
  ROLE: roles,
  PORT: intIn(0, 65535),
  REDIS_URL: redisUrl,
  REDIS_TLS_CA_FILE: pemFile,
  REDIS_WAIT_REPLICAS: intIn(0, 64),
  REDIS_WAIT_TIMEOUT_MS: intIn(1, 60_000),
  KAFKA_BROKERS: brokers,
  KEY_PREFIX: v.pipe(
    v.string(),
    v.regex(/^[A-Za-z0-9:_\-.]{1,64}$/, "must be 1-64 of A-Z a-z 0-9 : _ - ."),
  ),
  TOPIC_PREFIX: v.pipe(
    v.string(),
    v.regex(/^[A-Za-z0-9_\-.]{0,64}$/, "must be 0-64 of A-Z a-z 0-9 _ - ."),
  ),
  API_KEYS: v.pipe(
    v.string(),
    v.transform((s) => s.split(",").map((k) => k.trim()).filter((k) => k !== "")),
  ),
  LOG_LEVEL: v.picklist(["debug", "info", "warn", "error"], "must be debug, info, warn or error"),
  PARALLEL_MAX_WORKERS: intIn(1, 1024),
  SHUTDOWN_TIMEOUT_MS: intIn(100, 3_600_000),
} as const;

const DEFAULTS: Record<keyof typeof FIELDS, string | undefined> = {
  ROLE: "all",
  PORT: "8080",
  REDIS_URL: undefined,
  REDIS_TLS_CA_FILE: undefined,
  REDIS_WAIT_REPLICAS: "0",
  REDIS_WAIT_TIMEOUT_MS: "1000",
  KAFKA_BROKERS: undefined,
  KEY_PREFIX: "svc",
  TOPIC_PREFIX: "",
  API_KEYS: "",
  LOG_LEVEL: "info",
  PARALLEL_MAX_WORKERS: undefined,
  SHUTDOWN_TIMEOUT_MS: "25000",
};

function field<K extends keyof typeof FIELDS>(
  env: Record<string, string | undefined>,
  name: K,
): v.InferOutput<typeof FIELDS[K]> | undefined {
  const raw = env[name] === undefined || env[name] === "" ? DEFAULTS[name] : env[name];
  if (raw === undefined) return undefined;
  const result = v.safeParse(FIELDS[name], raw);
  if (!result.success) {
    const shown = name === "REDIS_URL" || name === "API_KEYS" ? "" : ` (got "${raw}")`;
    throw new ConfigError(name, `${result.issues[0].message}${shown}`);
  }
  return result.output as v.InferOutput<typeof FIELDS[K]>;
}

/**
 * Reads and validates the configuration.
 *
 * @param env the environment, `Deno.env.toObject()` by default
 * @returns the validated configuration
 * @throws {ConfigError} naming the first bad variable
 * @example
 * ```ts
 * const config = loadConfig({ ROLE: "http", PORT: "3000" });
 * ```
 */
export function loadConfig(env: Record<string, string | undefined> = Deno.env.toObject()): Config {
  const scheduleCron: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    const match = /^SCHEDULE_([A-Z0-9_]+)_CRON$/.exec(key);
    if (match && value !== undefined && value.trim() !== "") scheduleCron[match[1]] = value.trim();
  }
  return {
    roles: field(env, "ROLE")!,
    port: field(env, "PORT")!,
    redisUrl: field(env, "REDIS_URL"),
    redisTlsCa: field(env, "REDIS_TLS_CA_FILE"),
    redisWaitReplicas: field(env, "REDIS_WAIT_REPLICAS")!,
    redisWaitTimeoutMs: field(env, "REDIS_WAIT_TIMEOUT_MS")!,
    kafkaBrokers: field(env, "KAFKA_BROKERS"),
    keyPrefix: field(env, "KEY_PREFIX")!,
    topicPrefix: field(env, "TOPIC_PREFIX")!,
    apiKeys: field(env, "API_KEYS") ?? [],
    logLevel: field(env, "LOG_LEVEL")!,
    parallelMaxWorkers: field(env, "PARALLEL_MAX_WORKERS") ?? navigator.hardwareConcurrency ?? 1,
    shutdownTimeoutMs: field(env, "SHUTDOWN_TIMEOUT_MS")!,
    scheduleCron,
  };
}

/**
 * The environment variable that overrides a schedule's cron.
 *
 * @param name the schedule's name
 * @returns e.g. `SCHEDULE_ORDERS_REPORT_NIGHTLY_CRON`
 */
export function scheduleCronVariable(name: string): string {
  return `SCHEDULE_${name.toUpperCase().replaceAll("-", "_")}_CRON`;
}

/**
 * Hides the password of a URL, for logs.
 *
 * @param url a URL that may carry credentials
 * @returns the URL with its password replaced by `***`
 */
export function redactUrl(url: string): string {
  // By hand rather than with URL: `redis+sentinel://…` and comma lists of hosts are not URLs
  // that WHATWG parses.
  const m = /^([A-Za-z][A-Za-z0-9+.\-]*:\/\/)([^@/?#]*)@(.*)$/s.exec(url);
  if (!m) return /^[A-Za-z][A-Za-z0-9+.\-]*:\/\/[^\s]*$/.test(url) ? url : "<unparseable url>";
  const colon = m[2].indexOf(":");
  return colon < 0 ? `${m[1]}***@${m[3]}` : `${m[1]}${m[2].slice(0, colon)}:***@${m[3]}`;
}
