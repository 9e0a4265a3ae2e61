/**
 * @module Refcodes: 130 random bits, nothing else (no counter, no time, no host).
 */

const ALPHABET = "abcdefghijklmnopqrstuvwxyz234567";

/** What a refcode looks like: `t_` and 26 base32 characters. */
export const REFCODE = /^t_[a-z2-7]{26}$/;

/**
 * Makes a new refcode from the platform's CSPRNG.
 *
 * @returns e.g. `t_5k2q7wz3mh4xv6cpa2rjt7ydfe`
 */
export function newRefcode(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(17));
  let out = "t_";
  let bits = 0, value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < 28) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  return out;
}
