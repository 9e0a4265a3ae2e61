/**
 * @module The runs whose leases the lease thread renews, kept in shared memory: the main thread
 * writes a slot before a handler starts (no message, no wake-up of the thread), the thread reads
 * every slot at each renewal, even while the main thread is blocked.
 */

/** Bytes for `refcode\ntoken` in one slot. */
const TEXT_BYTES = 256;
/** A slot's state is `generation · 512 + text length`; length 0 means free. */
const LEN = 512;
const GENERATIONS = 1 << 21;

/** One run read from the table. */
export interface TableEntry {
  refcode: string;
  token: string;
  until: number;
}

/**
 * A fixed number of slots in a SharedArrayBuffer. One writer (the main thread), one reader (the
 * lease thread); a reader that sees a slot change while reading it skips it until next time.
 *
 * @example
 * ```ts
 * const table = new LeaseTable(64);
 * table.put("t_…", "w.1/1", Date.now() + 60_000);
 * new LeaseTable(table.buffer).read(); // in the thread
 * ```
 */
export class LeaseTable {
  readonly buffer: SharedArrayBuffer;
  readonly slots: number;
  #until: Float64Array;
  #state: Int32Array;
  #text: Uint8Array;
  #free: number[];
  #slotOf = new Map<string, number>();
  #encoder = new TextEncoder();
  #decoder = new TextDecoder();

  /** @param slotsOrBuffer how many slots (writer), or the writer's buffer (reader) */
  constructor(slotsOrBuffer: number | SharedArrayBuffer) {
    const buffer = typeof slotsOrBuffer === "number"
      ? new SharedArrayBuffer(slotsOrBuffer * (8 + 4 + TEXT_BYTES))
      : slotsOrBuffer;
    const slots = buffer.byteLength / (8 + 4 + TEXT_BYTES);
    this.buffer = buffer;
    this.slots = slots;
    this.#until = new Float64Array(buffer, 0, slots);
    this.#state = new Int32Array(buffer, slots * 8, slots);
    this.#text = new Uint8Array(buffer, slots * 12, slots * TEXT_BYTES);
    this.#free = Array.from({ length: slots }, (_, i) => slots - 1 - i);
  }

  /**
   * Adds a run (writer side).
   *
   * @param refcode the task
   * @param token the run's lease token
   * @param until renew no later than this (epoch ms)
   * @returns false when the table is full or the text does not fit
   */
  put(refcode: string, token: string, until: number): boolean {
    const i = this.#free.pop();
    if (i === undefined) return false;
    const text = `${refcode}\n${token}`;
    const slot = this.#text.subarray(i * TEXT_BYTES, (i + 1) * TEXT_BYTES);
    const { read, written } = this.#encoder.encodeInto(text, slot);
    if (read < text.length || written === 0) {
      this.#free.push(i);
      return false;
    }
    this.#until[i] = until;
    const generation = (Math.floor(Atomics.load(this.#state, i) / LEN) + 1) % GENERATIONS;
    Atomics.store(this.#state, i, generation * LEN + written);
    this.#slotOf.set(text, i);
    return true;
  }

  /**
   * Removes a run (writer side).
   *
   * @param refcode the task
   * @param token the run's lease token (tokens are unique per task, not across tasks)
   */
  remove(refcode: string, token: string): void {
    const text = `${refcode}\n${token}`;
    const i = this.#slotOf.get(text);
    if (i === undefined) return;
    this.#slotOf.delete(text);
    const generation = Math.floor(Atomics.load(this.#state, i) / LEN);
    Atomics.store(this.#state, i, generation * LEN);
    this.#free.push(i);
  }

  /** How many runs the writer has in the table. */
  get size(): number {
    return this.#slotOf.size;
  }

  /**
   * Reads every run (reader side).
   *
   * @returns the runs, each read whole
   */
  read(): TableEntry[] {
    const out: TableEntry[] = [];
    for (let i = 0; i < this.slots; i++) {
      const before = Atomics.load(this.#state, i);
      const length = before % LEN;
      if (length === 0) continue;
      const start = i * TEXT_BYTES;
      const text = this.#decoder.decode(this.#text.slice(start, start + length));
      const until = this.#until[i];
      if (Atomics.load(this.#state, i) !== before) continue;
      const nl = text.indexOf("\n");
      out.push({ refcode: text.slice(0, nl), token: text.slice(nl + 1), until });
    }
    return out;
  }
}
