/**
 * @module Structured JSON logs, one line per record, with secrets kept out.
 */

/** Log levels, in rising order. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_KEYS = /pass(word)?|secret|token|api_?keys?|authorization/i;

/** A structured logger; `child` adds fields to every record. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

function _clean(value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (typeof value === "string") return value.replace(/(\w+:\/\/[^:/@\s]*:)[^@\s]+@/g, "$1***@");
  return value;
}

/**
 * Creates a logger writing JSON lines to stdout.
 *
 * @param level the lowest level written
 * @param base fields added to every record
 * @param write where lines go (stdout by default; tests pass their own)
 * @returns the logger
 * @example
 * ```ts
 * const log = createLogger("info", { role: "http" });
 * log.info("listening", { port: 8080 });
 * ```
 */
export function createLogger(
  level: LogLevel = "info",
  base: Record<string, unknown> = {},
  write: (line: string) => void = (line) => console.log(line),
): Logger {
  const min = ORDER[level];
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < min) return;
    const record: Record<string, unknown> = { time: new Date().toISOString(), level: lvl, msg };
    for (const [k, val] of Object.entries({ ...base, ...fields })) {
      record[k] = SECRET_KEYS.test(k) ? "***" : _clean(val);
    }
    write(JSON.stringify(record));
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => createLogger(level, { ...base, ...fields }, write),
  };
}
