/**
 * @module The only reader of environment variables: API.md's table, validated with valibot.
 */
import * as v from "valibot";

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
  /** `ROLE`: the roles this process takes (all six for `all`). */
  roles: Role[];
  /** Whether `ROLE` named its roles (rather than `all`, or unset). */
  rolesExplicit: boolean;
  /** `SERVICE_NAME`: log field `service`, dashboard title, OpenAPI title, Kafka client id. */
  serviceName: string;
  /** `HOST`: the address the HTTP server binds. */
  host: string;
  /** `PORT`: the HTTP port. */
  port: number;
  /** `BODY_LIMIT_BYTES`: the largest request body accepted (413 beyond). */
  bodyLimitBytes: number;
  redisUrl: string | undefined;
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

const redisUrl = v.pipe(
  v.string(),
  v.check((s) => {
    try {
      const u = new URL(s);
      return (u.protocol === "redis:" || u.protocol === "rediss:") && u.hostname !== "";
    } catch {
      return false;
    }
  }, "must be a redis:// or rediss:// URL with a host"),
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

// A hostname (RFC 1123 labels), an IPv4 address or an IPv6 address (`::`, `::1`, `fe80::1`…).
const host = v.pipe(
  v.string(),
  v.trim(),
  v.check(
    (s) =>
      /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/
        .test(s) || (/^[0-9A-Fa-f:.]{2,45}$/.test(s) && s.includes(":")),
    "must be a hostname or an IP address",
  ),
);

const FIELDS = {
  ROLE: roles,
  SERVICE_NAME: v.pipe(
    v.string(),
    v.trim(),
    v.regex(
      /^[A-Za-z0-9][A-Za-z0-9_\-.]{0,62}$/,
      "must be 1-63 of A-Z a-z 0-9 _ - . (a letter or digit first)",
    ),
  ),
  HOST: host,
  PORT: intIn(0, 65535),
  BODY_LIMIT_BYTES: intIn(1, 1_073_741_824),
  REDIS_URL: redisUrl,
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
  SERVICE_NAME: "svc",
  HOST: "0.0.0.0",
  PORT: "8080",
  BODY_LIMIT_BYTES: "1048576",
  REDIS_URL: undefined,
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
  const roleList = (env.ROLE ?? "").split(",").map((r) => r.trim()).filter((r) => r !== "");
  return {
    roles: field(env, "ROLE")!,
    rolesExplicit: roleList.length > 0 && !roleList.includes("all"),
    serviceName: field(env, "SERVICE_NAME")!,
    host: field(env, "HOST")!,
    port: field(env, "PORT")!,
    bodyLimitBytes: field(env, "BODY_LIMIT_BYTES")!,
    redisUrl: field(env, "REDIS_URL"),
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
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "<unparseable url>";
  }
}
