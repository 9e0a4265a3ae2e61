/**
 * @module `SCHEDULE_<NAME>_CRON`: each schedule's effective cron, checked before start-up.
 */
import { type Config, ConfigError, scheduleCronVariable } from "../config.ts";
import type { Definitions } from "../definitions.ts";
import { Cron, CronError } from "./cron.ts";
import { type ScheduleDefinition, SCHEDULES } from "./define.ts";

/** A schedule with the environment applied. */
export interface ResolvedSchedule {
  readonly def: ScheduleDefinition;
  /** The cron in force (the override's, or the definition's). */
  readonly cron: string;
  /** False when `SCHEDULE_<NAME>_CRON=off`. */
  readonly enabled: boolean;
  /** The parsed cron; null when disabled. */
  readonly parsed: Cron | null;
  /** The variable that overrides it. */
  readonly variable: string;
}

/**
 * Applies `SCHEDULE_<NAME>_CRON` to one schedule.
 *
 * @param def the schedule
 * @param config the configuration
 * @returns the schedule as it will run
 * @throws {ConfigError} naming the variable when its value is not a valid cron
 */
export function resolveSchedule(def: ScheduleDefinition, config: Config): ResolvedSchedule {
  const variable = scheduleCronVariable(def.name);
  const override = config.scheduleCron[variable.slice("SCHEDULE_".length, -"_CRON".length)];
  if (override !== undefined && override.toLowerCase() === "off") {
    return { def, cron: def.cron, enabled: false, parsed: null, variable };
  }
  const cron = override ?? def.cron;
  try {
    return { def, cron, enabled: true, parsed: Cron.parse(cron, def.timezone), variable };
  } catch (err) {
    if (!(err instanceof CronError) || override === undefined) throw err;
    throw new ConfigError(variable, `${err.message}; use 5 or 6 cron fields, or "off"`);
  }
}

/**
 * Checks every `SCHEDULE_<NAME>_CRON` against the system's schedules: main calls it before any
 * role starts, so a bad value stops start-up with exit 2 whatever the role.
 *
 * @param system the program's definitions
 * @param config the configuration
 * @returns each schedule as it will run, by name
 * @throws {ConfigError} for an invalid cron, or an override naming no schedule
 * @example
 * ```ts
 * validateSchedules(system, loadConfig()); // throws ConfigError("SCHEDULE_HEARTBEAT_CRON", …)
 * ```
 */
export function validateSchedules(
  system: Definitions,
  config: Config,
): Map<string, ResolvedSchedule> {
  const out = new Map<string, ResolvedSchedule>();
  const byVariable = new Map<string, string>();
  for (const def of system.all(SCHEDULES)) {
    const resolved = resolveSchedule(def, config);
    const clash = byVariable.get(resolved.variable);
    if (clash) {
      throw new Error(
        `Schedules "${clash}" and "${def.name}" share the variable ${resolved.variable}; rename one`,
      );
    }
    byVariable.set(resolved.variable, def.name);
    out.set(def.name, resolved);
  }
  for (const upper of Object.keys(config.scheduleCron)) {
    const variable = `SCHEDULE_${upper}_CRON`;
    if (!byVariable.has(variable)) {
      const known = [...out.keys()].map((n) => `"${n}"`).join(", ") || "none";
      throw new ConfigError(variable, `no schedule is named so (schedules: ${known})`);
    }
  }
  return out;
}
