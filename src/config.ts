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
  /** `REDIS_URL`; undefined: the embedded store. */
  redisUrl: string | undefined;
  /** PEM text of `REDIS_TLS_CA_FILE`, read at start-up. */
  redisTlsCa: string | undefined;
  /** `REDIS_WAIT_REPLICAS`: replicas that must hold a write before it is answered. */
  redisWaitReplicas: number;
  /** `REDIS_WAIT_TIMEOUT_MS`: longest wait for those replicas. */
  redisWaitTimeoutMs: number;
  /** `KAFKA_BROKERS`; undefined: the embedded bus. */
  kafkaBrokers: string[] | undefined;
  /** How the program talks to Kafka besides the broker list (TLS, SASL, topic settings). */
  kafka: KafkaSettings;
  /** `KEY_PREFIX`: of every Redis key and Kafka consumer-group id. */
  keyPrefix: string;
  /** `TOPIC_PREFIX`: of every Kafka topic published to or consumed. */
  topicPrefix: string;
  /** `API_KEYS`; empty: the API is open. */
  apiKeys: string[];
  /** `LOG_LEVEL`. */
  logLevel: "debug" | "info" | "warn" | "error";
  /** `PARALLEL_MAX_WORKERS`: worker threads of this process for parallel tasks. */
  parallelMaxWorkers: number;
  /** `SHUTDOWN_TIMEOUT_MS`: most time a stop may take. */
  shutdownTimeoutMs: number;
  /** `SCHEDULE_<NAME>_CRON` overrides, keyed by the upper-cased name (`-` → `_`). */
  scheduleCron: Record<string, string>;
}

/** TLS, SASL and the settings of the topics the program creates. */
export interface KafkaSettings {
  /** TLS to the brokers; `ca`/`cert`/`key` are PEM text read from the files at start-up. */
  ssl: { ca?: string; cert?: string; key?: string } | undefined;
  /** SASL mechanism and credentials (`KAFKA_SASL_*`); undefined: no SASL. */
  sasl:
    | { mechanism: "plain" | "scram-sha-256" | "scram-sha-512"; username: string; password: string }
    | undefined;
  /** Replication factor of created topics; undefined = min(3, brokers in the cluster). */
  replicationFactor: number | undefined;
  /** Partitions of created topics. */
  partitions: number;
}

/** A bad environment value; start-up prints `message` on one line and exits 2. */
export class ConfigError extends Error {
  /**
   * Creates the error for one variable.
   *
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
  KAFKA_SSL: v.pipe(
    v.string(),
    v.trim(),
    v.toLowerCase(),
    v.picklist(["true", "false", "1", "0"], "must be true or false"),
    v.transform((s) => s === "true" || s === "1"),
  ),
  KAFKA_SSL_CA_FILE: v.string(),
  KAFKA_SSL_CERT_FILE: v.string(),
  KAFKA_SSL_KEY_FILE: v.string(),
  KAFKA_SASL_MECHANISM: v.pipe(
    v.string(),
    v.trim(),
    v.toLowerCase(),
    v.picklist(
      ["plain", "scram-sha-256", "scram-sha-512"],
      "must be plain, scram-sha-256 or scram-sha-512",
    ),
  ),
  KAFKA_SASL_USERNAME: v.string(),
  KAFKA_SASL_PASSWORD: v.string(),
  KAFKA_REPLICATION_FACTOR: intIn(1, 32),
  KAFKA_PARTITIONS: intIn(1, 10_000),
} as const;

const DEFAULTS: Record<keyof typeof FIELDS, string | undefined> = {
  ROLE: "all",
  SERVICE_NAME: "svc",
  HOST: "0.0.0.0",
  PORT: "8080",
  BODY_LIMIT_BYTES: "1048576",
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
  KAFKA_SSL: "false",
  KAFKA_SSL_CA_FILE: undefined,
  KAFKA_SSL_CERT_FILE: undefined,
  KAFKA_SSL_KEY_FILE: undefined,
  KAFKA_SASL_MECHANISM: undefined,
  KAFKA_SASL_USERNAME: undefined,
  KAFKA_SASL_PASSWORD: undefined,
  KAFKA_REPLICATION_FACTOR: undefined,
  KAFKA_PARTITIONS: "3",
};

/** Variables whose value is never echoed in an error. */
const SECRET = new Set(["REDIS_URL", "API_KEYS", "KAFKA_SASL_PASSWORD", "KAFKA_SASL_USERNAME"]);

function field<K extends keyof typeof FIELDS>(
  env: Record<string, string | undefined>,
  name: K,
): v.InferOutput<typeof FIELDS[K]> | undefined {
  const raw = env[name] === undefined || env[name] === "" ? DEFAULTS[name] : env[name];
  if (raw === undefined) return undefined;
  const result = v.safeParse(FIELDS[name], raw);
  if (!result.success) {
    const shown = SECRET.has(name) ? "" : ` (got "${raw}")`;
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
    redisTlsCa: field(env, "REDIS_TLS_CA_FILE"),
    redisWaitReplicas: field(env, "REDIS_WAIT_REPLICAS")!,
    redisWaitTimeoutMs: field(env, "REDIS_WAIT_TIMEOUT_MS")!,
    kafkaBrokers: field(env, "KAFKA_BROKERS"),
    kafka: kafkaSettings(env),
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
 * A PEM file's text, read at start-up so a wrong path stops the program at once.
 *
 * @param variable the variable naming the file
 * @param path the file
 * @param label what the PEM block must be (`CERTIFICATE`, `PRIVATE KEY`)
 * @returns the file's text
 */
function _pem(variable: string, path: string, label: RegExp): string {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound
      ? "no such file"
      : err instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : err instanceof Error
      ? err.message.split("\n")[0]
      : String(err);
    throw new ConfigError(variable, `cannot read the PEM file "${path}": ${why}`);
  }
  if (!new RegExp(`-----BEGIN ${label.source}-----`).test(text)) {
    throw new ConfigError(
      variable,
      `"${path}" holds no PEM ${label.source.replace(/[()|?\\]/g, "")}`,
    );
  }
  return text;
}

function kafkaSettings(env: Record<string, string | undefined>): KafkaSettings {
  const caFile = field(env, "KAFKA_SSL_CA_FILE");
  const certFile = field(env, "KAFKA_SSL_CERT_FILE");
  const keyFile = field(env, "KAFKA_SSL_KEY_FILE");
  const useSsl = field(env, "KAFKA_SSL")!;
  for (
    const [name, file] of [
      ["KAFKA_SSL_CA_FILE", caFile],
      ["KAFKA_SSL_CERT_FILE", certFile],
      ["KAFKA_SSL_KEY_FILE", keyFile],
    ] as const
  ) {
    if (file !== undefined && !useSsl) throw new ConfigError(name, "needs KAFKA_SSL=true");
  }
  if ((certFile === undefined) !== (keyFile === undefined)) {
    const missing = certFile === undefined ? "KAFKA_SSL_CERT_FILE" : "KAFKA_SSL_KEY_FILE";
    throw new ConfigError(missing, "KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together");
  }
  const ssl = useSsl
    ? {
      ...(caFile !== undefined ? { ca: _pem("KAFKA_SSL_CA_FILE", caFile, /CERTIFICATE/) } : {}),
      ...(certFile !== undefined
        ? { cert: _pem("KAFKA_SSL_CERT_FILE", certFile, /CERTIFICATE/) }
        : {}),
      ...(keyFile !== undefined
        ? { key: _pem("KAFKA_SSL_KEY_FILE", keyFile, /(RSA |EC |ENCRYPTED )?PRIVATE KEY/) }
        : {}),
    }
    : undefined;
  const mechanism = field(env, "KAFKA_SASL_MECHANISM");
  const username = field(env, "KAFKA_SASL_USERNAME");
  const password = field(env, "KAFKA_SASL_PASSWORD");
  if (mechanism === undefined) {
    if (username !== undefined) {
      throw new ConfigError("KAFKA_SASL_USERNAME", "needs KAFKA_SASL_MECHANISM");
    }
    if (password !== undefined) {
      throw new ConfigError("KAFKA_SASL_PASSWORD", "needs KAFKA_SASL_MECHANISM");
    }
  } else {
    if (username === undefined) {
      throw new ConfigError(
        "KAFKA_SASL_USERNAME",
        `is required with KAFKA_SASL_MECHANISM=${mechanism}`,
      );
    }
    if (password === undefined) {
      throw new ConfigError(
        "KAFKA_SASL_PASSWORD",
        `is required with KAFKA_SASL_MECHANISM=${mechanism}`,
      );
    }
  }
  return {
    ssl,
    sasl: mechanism !== undefined
      ? { mechanism, username: username!, password: password! }
      : undefined,
    replicationFactor: field(env, "KAFKA_REPLICATION_FACTOR"),
    partitions: field(env, "KAFKA_PARTITIONS")!,
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
