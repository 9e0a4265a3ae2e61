/**
 * @module Data structures and number formats of the embedded store (`memory-store.ts`): a list
 * deque, a sorted set, and Redis's (and Lua's) double formats.
 */

/** A growable ring buffer: O(1) push and pop at both ends, O(1) access by index. */
export class Deque {
  #buf: (string | undefined)[] = new Array(8);
  #head = 0;
  #len = 0;

  /**
   * @param items the initial items, front first
   */
  constructor(items: string[] = []) {
    for (const item of items) this.push(item);
  }

  /** The number of items. */
  get length(): number {
    return this.#len;
  }

  #grow(): void {
    const next = new Array<string | undefined>(this.#buf.length * 2);
    for (let i = 0; i < this.#len; i++) next[i] = this.#buf[(this.#head + i) % this.#buf.length];
    this.#buf = next;
    this.#head = 0;
  }

  /** Adds at the back. */
  push(item: string): void {
    if (this.#len === this.#buf.length) this.#grow();
    this.#buf[(this.#head + this.#len) % this.#buf.length] = item;
    this.#len++;
  }

  /** Adds at the front. */
  unshift(item: string): void {
    if (this.#len === this.#buf.length) this.#grow();
    this.#head = (this.#head - 1 + this.#buf.length) % this.#buf.length;
    this.#buf[this.#head] = item;
    this.#len++;
  }

  /** Removes from the back. */
  pop(): string | undefined {
    if (!this.#len) return undefined;
    const i = (this.#head + this.#len - 1) % this.#buf.length;
    const item = this.#buf[i];
    this.#buf[i] = undefined;
    this.#len--;
    return item;
  }

  /** Removes from the front. */
  shift(): string | undefined {
    if (!this.#len) return undefined;
    const item = this.#buf[this.#head];
    this.#buf[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#buf.length;
    this.#len--;
    return item;
  }

  /** The item at `index` (0 = front), which must be in range. */
  at(index: number): string {
    return this.#buf[(this.#head + index) % this.#buf.length]!;
  }

  /** The items from `start` to `end` inclusive (in range). */
  slice(start: number, end: number): string[] {
    const out: string[] = [];
    for (let i = start; i <= end; i++) out.push(this.at(i));
    return out;
  }
}

/** A member of a sorted set with its score. */
export interface ScoredMember {
  readonly member: string;
  readonly score: number;
}

function _compare(a: ScoredMember, score: number, member: string): number {
  if (a.score !== score) return a.score < score ? -1 : 1;
  return a.member === member ? 0 : a.member < member ? -1 : 1;
}

/** Items per block of a sorted set before the block is split in two. */
const _BLOCK_MAX = 1024;

/**
 * A sorted set: a map member → score plus the members ordered by (score, member) in blocks of at
 * most `_BLOCK_MAX`, so adding or removing one of 100k members moves a few hundred pointers, not
 * the whole array. Finding a score or a member is two binary searches.
 */
export class SortedSet {
  #scores = new Map<string, number>();
  #blocks: ScoredMember[][] = [];

  /** The number of members. */
  get size(): number {
    return this.#scores.size;
  }

  /** The score of `member`, if present. */
  score(member: string): number | undefined {
    return this.#scores.get(member);
  }

  /** The block holding (score, member), or the one it would go to, and the index in it. */
  #locate(score: number, member: string): [number, number] {
    const blocks = this.#blocks;
    let lo = 0, hi = blocks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const block = blocks[mid];
      if (_compare(block[block.length - 1], score, member) < 0) lo = mid + 1;
      else hi = mid;
    }
    const block = blocks[lo] ?? [];
    let i = 0, j = block.length;
    while (i < j) {
      const mid = (i + j) >>> 1;
      if (_compare(block[mid], score, member) < 0) i = mid + 1;
      else j = mid;
    }
    return [lo, i];
  }

  /** Adds `member` or moves it to `score`. */
  set(member: string, score: number): void {
    const old = this.#scores.get(member);
    if (old === score) return;
    if (old !== undefined) this.#remove(old, member);
    this.#scores.set(member, score);
    if (!this.#blocks.length) {
      this.#blocks.push([{ member, score }]);
      return;
    }
    const [b, i] = this.#locate(score, member);
    const block = this.#blocks[b];
    block.splice(i, 0, { member, score });
    if (block.length > _BLOCK_MAX) this.#blocks.splice(b + 1, 0, block.splice(block.length >> 1));
  }

  #remove(score: number, member: string): void {
    const [b, i] = this.#locate(score, member);
    const block = this.#blocks[b];
    if (block.length === 1) this.#blocks.splice(b, 1);
    else if (i === 0) block.shift();
    else block.splice(i, 1);
  }

  /** Removes `member`; returns whether it was there. */
  delete(member: string): boolean {
    const score = this.#scores.get(member);
    if (score === undefined) return false;
    this.#remove(score, member);
    this.#scores.delete(member);
    return true;
  }

  /** The rank of position `i` of block `b`. */
  #rankOf(b: number, i: number): number {
    let rank = i;
    for (let k = 0; k < b; k++) rank += this.#blocks[k].length;
    return rank;
  }

  /** The members with ranks `start`..`end` inclusive (ascending, in range). */
  slice(start: number, end: number): ScoredMember[] {
    const out: ScoredMember[] = [];
    let offset = 0;
    for (const block of this.#blocks) {
      if (offset > end) break;
      if (offset + block.length > start) {
        out.push(...block.slice(Math.max(0, start - offset), end - offset + 1));
      }
      offset += block.length;
    }
    return out;
  }

  /** The rank of the first item for which `before` is false (items are ordered by it). */
  #partition(before: (item: ScoredMember) => boolean): number {
    const blocks = this.#blocks;
    let lo = 0, hi = blocks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (before(blocks[mid][blocks[mid].length - 1])) lo = mid + 1;
      else hi = mid;
    }
    if (lo === blocks.length) return this.size;
    const block = blocks[lo];
    let i = 0, j = block.length;
    while (i < j) {
      const mid = (i + j) >>> 1;
      if (before(block[mid])) i = mid + 1;
      else j = mid;
    }
    return this.#rankOf(lo, i);
  }

  /** The rank of the first member whose score is above `min` (or equal unless `exclusive`). */
  lowerRank(min: number, exclusive: boolean): number {
    return this.#partition((x) => x.score < min || (exclusive && x.score === min));
  }

  /** The rank of the last member whose score is below `max` (or equal unless `exclusive`). */
  upperRank(max: number, exclusive: boolean): number {
    return this.#partition((x) => x.score < max || (!exclusive && x.score === max)) - 1;
  }

  /** Removes ranks `start`..`end` inclusive (in range); returns how many. */
  removeRange(start: number, end: number): number {
    if (end < start) return 0;
    let offset = 0;
    const kept: ScoredMember[][] = [];
    for (const block of this.#blocks) {
      const from = Math.max(0, start - offset), to = Math.min(block.length - 1, end - offset);
      offset += block.length;
      if (from <= to) {
        for (let i = from; i <= to; i++) this.#scores.delete(block[i].member);
        block.splice(from, to - from + 1);
      }
      if (block.length) kept.push(block);
    }
    this.#blocks = kept;
    return end - start + 1;
  }
}

/**
 * Formats a double like C's `%.<precision>g`: Redis 7.0's RESP2 doubles and script arguments
 * (`%.17g`), Lua's `tostring` and cjson (`%.14g`); `inf`, `-inf`.
 *
 * @param value the number
 * @param precision significant digits
 * @returns e.g. `1.5`, `0.10000000000000001`, `1e+20`
 */
export function formatDouble(value: number, precision = 17): string {
  if (value === Infinity) return "inf";
  if (value === -Infinity) return "-inf";
  if (Number.isNaN(value)) return "nan";
  if (value === 0) return Object.is(value, -0) ? "-0" : "0";
  // The common case, fast: an integer that %g writes out in full.
  if (Number.isInteger(value) && Math.abs(value) < 10 ** Math.min(precision, 16)) {
    return String(value);
  }
  const [mantissa, expText] = value.toExponential(precision - 1).split("e");
  const exp = Number(expText);
  const sign = mantissa.startsWith("-") ? "-" : "";
  const digits = mantissa.replace(/[-.]/g, "");
  if (exp < -4 || exp >= precision) {
    const m = `${digits[0]}.${digits.slice(1)}`.replace(/\.?0+$/, "");
    return `${sign}${m}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  const int = exp >= 0 ? digits.slice(0, exp + 1) : "0";
  const frac = (exp >= 0 ? digits.slice(exp + 1) : "0".repeat(-exp - 1) + digits).replace(
    /0+$/,
    "",
  );
  return `${sign}${int}${frac ? `.${frac}` : ""}`;
}

const _FLOAT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const _INF = /^[+-]?inf(?:inity)?$/i;

/**
 * Parses a double like Redis's `strtod` with its checks (no spaces around, no NaN).
 *
 * @param text the argument
 * @returns the number, or undefined when Redis would say "not a valid float"
 */
export function parseDouble(text: string): number | undefined {
  if (_INF.test(text)) return text.startsWith("-") ? -Infinity : Infinity;
  if (!_FLOAT.test(text)) return undefined;
  const value = Number(text);
  return value === 0 ? 0 : value;
}
