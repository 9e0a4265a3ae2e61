/**
 * @module Cron expressions (5 fields, or 6 with seconds) in an IANA time zone, on cron-parser,
 * with one deterministic answer to "when is the next tick" across DST changes.
 *
 * DST rules (what cron-parser does when it walks through a change, made independent of where
 * the walk starts):
 * - spring forward: a tick whose wall time does not exist (02:30 when 02:00 jumps to 03:00) runs
 *   once, shifted by the gap (03:30);
 * - fall back: a schedule with fixed hours runs at the first of the two repeated wall times
 *   only (01:30 EDT, not 01:30 EST); a schedule whose hour field is `*` keeps its pace in
 *   elapsed time and ticks in both passes.
 *
 * cron-parser gives that answer when it iterates through the change from before it, but not
 * when it starts inside the repeated hour or just after the gap, so every walk here starts
 * before a change that happened in the last {@link _LOOKBACK_MS}.
 */
import { CronExpressionParser } from "cron-parser";

type _Expression = ReturnType<typeof CronExpressionParser.parse>;

/** A cron expression or time zone that cannot be used. */
export class CronError extends Error {
  /** @param message what is wrong */
  constructor(message: string) {
    super(message);
    this.name = "CronError";
  }
}

/** Longer than any DST change and the repeated hour after it (the largest today is 2 h). */
const _LOOKBACK_MS = 3 * 3600_000;
/** Past this many steps a cursor starts again from the target instead of walking to it. */
const _MAX_WALK = 1000;

const _UTC = new Set(["UTC", "Etc/UTC", "Etc/GMT", "GMT", "Etc/UCT", "UCT", "Zulu", "Etc/Zulu"]);

/**
 * Checks an IANA time zone name.
 *
 * @param timezone e.g. `America/New_York`
 * @returns true when the runtime knows it
 */
export function isTimeZone(timezone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: timezone });
    return true;
  } catch {
    return false;
  }
}

/** A parsed cron expression in a time zone. */
export class Cron {
  readonly expression: string;
  readonly timezone: string;
  #offsets: Intl.DateTimeFormat | undefined;

  private constructor(expression: string, timezone: string) {
    this.expression = expression;
    this.timezone = timezone;
    this.#offsets = _UTC.has(timezone) ? undefined : new Intl.DateTimeFormat("en-US", {
      timeZone: timezone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
  }

  /**
   * Parses and checks an expression.
   *
   * @param expression 5 fields (minute first) or 6 (second first), or a cron-parser alias
   *   such as `@daily`
   * @param timezone IANA name; `UTC` by default
   * @returns the cron
   * @throws {CronError} when the expression or the zone is invalid, or never fires
   * @example
   * ```ts
   * const cron = Cron.parse("30 2 * * *", "America/New_York");
   * new Date(cron.next(Date.now()));
   * ```
   */
  static parse(expression: string, timezone = "UTC"): Cron {
    const text = expression.trim();
    if (!isTimeZone(timezone)) throw new CronError(`"${timezone}" is not an IANA time zone`);
    const fields = text.split(/\s+/).filter((f) => f !== "");
    if (!text.startsWith("@") && (fields.length < 5 || fields.length > 6)) {
      throw new CronError(
        `"${text}" has ${fields.length} field${fields.length === 1 ? "" : "s"}; ` +
          "a cron needs 5 (minute hour day month weekday) or 6 (second first)",
      );
    }
    const cron = new Cron(fields.join(" "), timezone);
    try {
      _open(cron, Date.now()).next();
    } catch (err) {
      throw new CronError(`"${text}" is not a valid cron: ${(err as Error).message}`);
    }
    return cron;
  }

  /**
   * The first tick strictly after `after`.
   *
   * @param after epoch ms
   * @returns epoch ms
   */
  next(after: number): number {
    return this.cursor(after).next();
  }

  /**
   * A cursor over the ticks after `after`, ascending; it keeps its place, so walking a
   * schedule costs one step per tick.
   *
   * @param after epoch ms
   * @returns the cursor
   */
  cursor(after: number): CronCursor {
    return new CronCursor(this, after);
  }

  /**
   * The ticks in `(after, before)`, or `(after, before]` when `inclusive`.
   *
   * @param after epoch ms, excluded
   * @param before epoch ms
   * @param options `inclusive`; `keep`: return only the newest `keep` ticks; `max`: stop
   *   counting after this many
   * @returns the ticks kept (ascending) and how many there were (up to `max`)
   */
  between(
    after: number,
    before: number,
    options: { inclusive?: boolean; keep?: number; max?: number } = {},
  ): { ticks: number[]; total: number } {
    const keep = options.keep ?? Infinity;
    const max = options.max ?? 100_000;
    const ticks: number[] = [];
    let total = 0;
    if (before <= after) return { ticks, total };
    const cursor = this.cursor(after);
    while (total < max) {
      const t = cursor.next();
      if (t > before || (t === before && !options.inclusive)) break;
      total++;
      ticks.push(t);
      if (ticks.length > keep) ticks.shift();
    }
    return { ticks, total };
  }

  /** The zone's UTC offset at `at`, in ms (0 for UTC). */
  offset(at: number): number {
    if (!this.#offsets) return 0;
    const p: Record<string, number> = {};
    for (const part of this.#offsets.formatToParts(at)) {
      if (part.type !== "literal") p[part.type] = Number(part.value);
    }
    const wall = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
    return wall - Math.floor(at / 1000) * 1000;
  }

  /** Where a walk to `after` must start so DST changes are crossed from before them. */
  seed(after: number): number {
    if (!this.#offsets) return after;
    const back = after - _LOOKBACK_MS;
    return this.offset(back) === this.offset(after) ? after : back;
  }
}

/** A cron-parser iterator positioned at `from`. */
function _open(cron: Cron, from: number): _Expression {
  return CronExpressionParser.parse(cron.expression, {
    tz: cron.timezone,
    currentDate: new Date(from),
  });
}

/** Ticks of a cron after a point, ascending, one cron-parser step per tick. */
export class CronCursor {
  #cron: Cron;
  #iter!: _Expression;
  #last = -Infinity;
  #pending: number | undefined;

  /**
   * @param cron the schedule
   * @param after the cursor yields ticks strictly after this instant
   */
  constructor(cron: Cron, after: number) {
    this.#cron = cron;
    this.#reset(after);
  }

  #reset(after: number): void {
    this.#iter = _open(this.#cron, this.#cron.seed(after));
    this.#last = -Infinity;
    this.#pending = undefined;
    this.#walkPast(after, Infinity);
  }

  #step(): number {
    for (;;) {
      const t = this.#iter.next().getTime();
      if (t > this.#last) {
        this.#last = t;
        return t;
      }
    }
  }

  /** Walks until the next tick is after `after`; false when it would take too many steps. */
  #walkPast(after: number, limit: number): boolean {
    let t = this.#pending ?? this.#step();
    for (let steps = 0; t <= after; steps++) {
      if (steps >= limit) return false;
      t = this.#step();
    }
    this.#pending = t;
    return true;
  }

  /**
   * The next tick, advancing the cursor.
   *
   * @returns epoch ms
   */
  next(): number {
    const t = this.#pending ?? this.#step();
    this.#pending = undefined;
    return t;
  }

  /**
   * The next tick without advancing.
   *
   * @returns epoch ms
   */
  peek(): number {
    this.#pending ??= this.#step();
    return this.#pending;
  }

  /**
   * The first tick strictly after `after` (and after every tick already returned), advancing
   * the cursor to it; far jumps start a new walk instead of stepping through every tick.
   *
   * @param after epoch ms
   * @returns epoch ms
   */
  nextAfter(after: number): number {
    if (!this.#walkPast(after, _MAX_WALK)) this.#reset(after);
    return this.next();
  }
}
