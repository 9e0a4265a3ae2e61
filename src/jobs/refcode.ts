/**
 * @module Refcodes of every job kind: a kind prefix and 130 random bits, nothing else (no
 * counter, no time, no host), so one refcode never lets anyone guess another.
 */

const ALPHABET = "abcdefghijklmnopqrstuvwxyz234567";
/** 26 base32 characters: 130 bits, of which 17 random bytes give 136. */
const CHARS = 26;

/** Random bytes per refcode. */
const DRAW_BYTES = 17;
/**
 * CSPRNG bytes drawn 256 refcodes at a time (as nanoid pools them): one `getRandomValues` call
 * costs more than the encoding of a refcode. Each byte is used once.
 */
const _pool = new Uint8Array(DRAW_BYTES * 256);
let _poolAt = _pool.length;

/** The refcodes of one kind of job: `<prefix>_` and 26 base32 characters. */
export class Refcodes {
  /** What one looks like, e.g. `/^t_[a-z2-7]{26}$/`. */
  readonly pattern: RegExp;

  /** @param prefix the kind's letters, e.g. `t` for async tasks */
  constructor(readonly prefix: string) {
    if (!/^[a-z]+$/.test(prefix)) throw new RangeError(`Refcode prefix "${prefix}" is not a-z`);
    this.pattern = new RegExp(`^${prefix}_[a-z2-7]{${CHARS}}$`);
  }

  /**
   * Makes a new refcode from the platform's CSPRNG: one that `accept` takes, if given (drawn
   * again until it does: a test that passes one draw in `m` leaves log2(m) bits fewer to guess).
   *
   * @param accept what the refcode must satisfy (a shard it must hash to)
   * @returns e.g. `t_5k2q7wz3mh4xv6cpa2rjt7ydfe`
   */
  make(accept?: (refcode: string) => boolean): string {
    for (;;) {
      const refcode = this.#draw();
      if (!accept || accept(refcode)) return refcode;
    }
  }

  #draw(): string {
    if (_poolAt + DRAW_BYTES > _pool.length) {
      crypto.getRandomValues(_pool);
      _poolAt = 0;
    }
    const at = _poolAt;
    _poolAt += DRAW_BYTES;
    let out = "";
    let bits = 0, value = 0;
    for (let i = at; i < at + DRAW_BYTES; i++) {
      value = (value << 8) | _pool[i];
      bits += 8;
      while (bits >= 5 && out.length < CHARS) {
        out += ALPHABET[(value >>> (bits - 5)) & 31];
        bits -= 5;
      }
      value &= (1 << bits) - 1;
    }
    return `${this.prefix}_${out}`;
  }

  /**
   * Whether `value` has the shape of this kind's refcodes (checked before any store read).
   *
   * @param value what a client sent
   * @returns true for a well-formed refcode
   */
  test(value: string): boolean {
    return this.pattern.test(value);
  }
}

/** Async tasks: `t_…`. */
export const TASK_REFCODES: Refcodes = new Refcodes("t");

/** Parallel runs: `p_…`. */
export const RUN_REFCODES: Refcodes = new Refcodes("p");
