/**
 * @module The embedded Store: an in-process Redis emulation used when REDIS_URL is unset. Replies
 * and errors match what RedisStore returns from Redis 7 for the same commands; scripts run their
 * own Lua (`lua.ts`).
 *
 * It emulates exactly the commands the runtime, its scripts and its documented API use
 * (`EMULATED_COMMANDS`, defined below with `_def`):
 * - keys and server: PING TIME DEL UNLINK EXISTS SCAN EXPIRE PEXPIRE PERSIST TTL PTTL PUBLISH
 * - strings: GET SET INCR INCRBY
 * - hashes: HSET HGET HMGET HGETALL HVALS HDEL HINCRBY
 * - lists: LPUSH RPUSH LPOP RPOP LLEN LRANGE LTRIM
 * - sets: SADD SREM SISMEMBER SCARD
 * - sorted sets: ZADD ZREM ZSCORE ZCARD ZRANGE ZREVRANGE ZRANGEBYSCORE ZREMRANGEBYRANK
 *
 * Any other command fails, from `command`, `multi`, `pipeline` and scripts alike, with
 * `ERR unknown command 'NAME' (not emulated by the embedded store)`: never a silent difference.
 * A command added here needs its cases in `test/infra/store.redis.test.ts`.
 */
import {
  type Check,
  type Command,
  type Reply,
  type Script,
  type Store,
  UnavailableError,
} from "./store.ts";
import {
  loadLua,
  LuaScripts,
  type ScriptLog,
  type ScriptReply,
  sha1hex,
  StatusReply,
} from "./lua.ts";
import { Deque, formatDouble, parseDouble, type ScoredMember, SortedSet } from "./_memory-data.ts";

const SWEEP_INTERVAL_MS = 1000;
const WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value";
const NOT_INTEGER = "ERR value is not an integer or out of range";
const NOT_FLOAT = "ERR value is not a valid float";
const SYNTAX = "ERR syntax error";
const OVERFLOW = "ERR increment or decrement would overflow";
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** A double reply: a bulk string in RESP2 (and in scripts), a number in RESP3. */
class _Double {
  constructor(readonly value: number) {}
}
/** A map reply (HGETALL): a flat array in RESP2, an object (then flattened) through node-redis. */
class _Map {
  constructor(readonly flat: string[]) {}
}
/** Members with scores: flat in RESP2, `[member, score]` pairs in RESP3. */
class _Pairs {
  constructor(readonly items: ScoredMember[]) {}
}
/** A reply before it is shaped for a protocol. */
type Raw = string | number | null | StatusReply | _Double | _Map | _Pairs | Raw[];

const OK = new StatusReply("OK");

function _resp2(raw: Raw): Reply {
  if (raw instanceof StatusReply) return raw.text;
  if (raw instanceof _Double) return formatDouble(raw.value);
  if (raw instanceof _Map) return raw.flat;
  if (raw instanceof _Pairs) return raw.items.flatMap((x) => [x.member, formatDouble(x.score)]);
  if (Array.isArray(raw)) return raw.map(_resp2);
  return raw;
}

/** What node-redis (RESP3 by default) hands RedisStore, after its normalisation. */
function _resp3(raw: Raw): Reply {
  if (raw instanceof StatusReply) return raw.text;
  if (raw instanceof _Double) return raw.value;
  if (raw instanceof _Map) {
    // node-redis decodes maps into objects, whose integer-like keys come first, ascending.
    const object: Record<string, string> = Object.create(null);
    for (let i = 0; i + 1 < raw.flat.length; i += 2) object[raw.flat[i]] = raw.flat[i + 1];
    return Object.entries(object).flat();
  }
  if (raw instanceof _Pairs) return raw.items.map((x) => [x.member, x.score]);
  if (Array.isArray(raw)) return raw.map(_resp3);
  return raw;
}

/** What `redis.call` gives a script: RESP2, with status replies kept apart from strings. */
function _script(raw: Raw): ScriptReply {
  if (raw instanceof _Double) return formatDouble(raw.value);
  if (raw instanceof _Map) return raw.flat;
  if (raw instanceof _Pairs) return raw.items.flatMap((x) => [x.member, formatDouble(x.score)]);
  if (Array.isArray(raw)) return raw.map(_script);
  return raw;
}

interface Types {
  string: string;
  hash: Map<string, string>;
  list: Deque;
  set: Set<string>;
  zset: SortedSet;
}
type Kind = keyof Types;
type Of<K extends Kind> = Types[K];
type Value = { [K in Kind]: { type: K; value: Types[K] } }[Kind];

const _fail = (message: string): never => {
  throw new Error(message);
};

/** Parses an integer argument like Redis's `string2ll` (strict, 64-bit). */
function _bigint(text: string, message = NOT_INTEGER): bigint {
  if (!/^-?(0|[1-9]\d*)$/.test(text) || text === "-0") _fail(message);
  const n = BigInt(text);
  if (n < INT64_MIN || n > INT64_MAX) _fail(message);
  return n;
}

const _int = (text: string, message = NOT_INTEGER): number => Number(_bigint(text, message));

function _double(text: string, message = NOT_FLOAT): number {
  return parseDouble(text) ?? _fail(message);
}

/** Redis glob patterns (KEYS, SCAN MATCH) as a regular expression. */
function _glob(pattern: string): RegExp {
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "*") out += "[\\s\\S]*";
    else if (c === "?") out += "[\\s\\S]";
    else if (c === "\\" && i + 1 < pattern.length) out += _escape(pattern[++i]);
    else if (c === "[") {
      let cls = "";
      let j = i + 1;
      const negate = pattern[j] === "^";
      if (negate) j++;
      for (; j < pattern.length && pattern[j] !== "]"; j++) {
        if (pattern[j] === "\\" && j + 1 < pattern.length) cls += _escape(pattern[++j]);
        else if (pattern[j + 1] === "-" && j + 2 < pattern.length && pattern[j + 2] !== "]") {
          const [a, b] = [pattern[j], pattern[j + 2]].sort();
          cls += `${_escape(a)}-${_escape(b)}`;
          j += 2;
        } else cls += _escape(pattern[j]);
      }
      i = j;
      out += negate ? `[^${cls}]` : cls ? `[${cls}]` : "(?!)";
    } else out += _escape(c);
  }
  return new RegExp(`^${out}$`);
}

const _escape = (c: string) => c.replace(/[\\^$.*+?()[\]{}|\/-]/g, "\\$&");

/** The keyspace: values, expiry times and the clock of the running command. */
class _Db {
  data = new Map<string, Value>();
  expires = new Map<string, number>();
  /** Time of the running command; frozen for a whole script, as Redis does. */
  now: number;
  constructor(readonly clock: () => number) {
    this.now = Math.floor(clock());
  }
  publish: (channel: string, message: string) => number = () => 0;

  /** The live value of `key`, deleting it first if expired. */
  get(key: string): Value | undefined {
    const at = this.expires.get(key);
    if (at !== undefined && at <= this.now) {
      this.data.delete(key);
      this.expires.delete(key);
      return undefined;
    }
    return this.data.get(key);
  }

  /** The value of `key` if it has type `type`; WRONGTYPE if it has another. */
  read<K extends Kind>(key: string, type: K): Of<K> | undefined {
    const v = this.get(key);
    if (!v) return undefined;
    if (v.type !== type) _fail(WRONGTYPE);
    return v.value as Of<K>;
  }

  /** The value of `key`, created empty if missing; WRONGTYPE if it has another type. */
  write<K extends Kind>(key: string, type: K, create: () => Of<K>): Of<K> {
    const found = this.read(key, type);
    if (found !== undefined) return found;
    const value = create();
    this.data.set(key, { type, value } as Value);
    return value;
  }

  /** Stores a string, dropping any TTL unless `keepTtl`. */
  setString(key: string, value: string, keepTtl = false): void {
    this.get(key);
    this.data.set(key, { type: "string", value });
    if (!keepTtl) this.expires.delete(key);
  }

  delete(key: string): boolean {
    if (!this.get(key)) return false;
    this.data.delete(key);
    this.expires.delete(key);
    return true;
  }

  /** Deletes a collection that became empty, as Redis does. */
  dropIfEmpty(key: string, size: number): void {
    if (size === 0) this.delete(key);
  }

  /** Deletes every expired key. */
  sweep(): void {
    const now = this.clock();
    for (const [key, at] of this.expires) {
      if (at <= now) {
        this.data.delete(key);
        this.expires.delete(key);
      }
    }
  }

  /** Live keys matching an optional glob and type. */
  keys(pattern?: string, type?: string): string[] {
    const re = pattern === undefined || pattern === "*" ? undefined : _glob(pattern);
    const out: string[] = [];
    for (const key of [...this.data.keys()]) {
      const v = this.get(key);
      if (v && (!re || re.test(key)) && (!type || v.type === type)) out.push(key);
    }
    return out;
  }

  /** Sets the absolute expiry of an existing key (deleting it if already past). */
  expireAt(key: string, at: number): void {
    if (at <= this.now) this.delete(key);
    else this.expires.set(key, at);
  }
}

/** A command: its arity as Redis counts it (name included; negative = at least) and its code. */
interface Spec {
  arity: number;
  run: (db: _Db, args: string[]) => Raw;
}

const COMMANDS = new Map<string, Spec>();

function _def(name: string, arity: number, run: Spec["run"]): void {
  COMMANDS.set(name, { arity, run });
}

// --- keys, server ---

_def(
  "PING",
  -1,
  (_, a) =>
    a.length > 1
      ? _fail("ERR wrong number of arguments for 'ping' command")
      : a[0] ?? new StatusReply("PONG"),
);
_def("TIME", 1, (db) => {
  const micros = Math.floor(db.clock() * 1000);
  return [String(Math.floor(micros / 1e6)), String(micros % 1e6)];
});
_def("DEL", -2, (db, a) => a.filter((k) => db.delete(k)).length);
_def("UNLINK", -2, (db, a) => a.filter((k) => db.delete(k)).length);
_def("EXISTS", -2, (db, a) => a.filter((k) => db.get(k)).length);
_def("SCAN", -2, (db, a) => {
  _bigint(a[0], "ERR invalid cursor");
  let match: string | undefined, type: string | undefined;
  for (let i = 1; i < a.length; i += 2) {
    const opt = a[i].toUpperCase();
    if (i + 1 >= a.length) _fail(SYNTAX);
    if (opt === "MATCH") match = a[i + 1];
    else if (opt === "COUNT") {
      if (_int(a[i + 1]) < 1) _fail(SYNTAX);
    } else if (opt === "TYPE") type = a[i + 1];
    else _fail(SYNTAX);
  }
  return ["0", a[0] === "0" ? db.keys(match, type) : []];
});

function _expire(db: _Db, a: string[], unitMs: number, absolute: boolean, name: string): number {
  const n = _bigint(a[1]);
  const flags = new Set(a.slice(2).map((f) => f.toUpperCase()));
  for (const f of flags) {
    if (!["NX", "XX", "GT", "LT"].includes(f)) _fail(`ERR Unsupported option ${f}`);
  }
  if (flags.has("NX") && flags.size > 1) {
    _fail("ERR NX and XX, GT or LT options at the same time are not compatible");
  }
  if (flags.has("GT") && flags.has("LT")) {
    _fail("ERR GT and LT options at the same time are not compatible");
  }
  let at = n * BigInt(unitMs) + (absolute ? 0n : BigInt(db.now));
  if (at > INT64_MAX || at < INT64_MIN) _fail(`ERR invalid expire time in '${name}' command`);
  if (!db.get(a[0])) return 0;
  const current = db.expires.get(a[0]);
  if (flags.has("NX") && current !== undefined) return 0;
  if (flags.has("XX") && current === undefined) return 0;
  if (flags.has("GT") && (current === undefined || Number(at) <= current)) return 0;
  if (flags.has("LT") && current !== undefined && Number(at) >= current) return 0;
  at = at < 0n ? 0n : at;
  db.expireAt(a[0], Number(at));
  return 1;
}
_def("EXPIRE", -3, (db, a) => _expire(db, a, 1000, false, "expire"));
_def("PEXPIRE", -3, (db, a) => _expire(db, a, 1, false, "pexpire"));
_def("PERSIST", 2, (db, a) => db.get(a[0]) && db.expires.delete(a[0]) ? 1 : 0);
function _ttl(db: _Db, key: string): number {
  if (!db.get(key)) return -2;
  const at = db.expires.get(key);
  return at === undefined ? -1 : Math.max(0, at - db.now);
}
_def("PTTL", 2, (db, a) => _ttl(db, a[0]));
_def("TTL", 2, (db, a) => {
  const ms = _ttl(db, a[0]);
  return ms < 0 ? ms : Math.floor((ms + 500) / 1000);
});
_def("PUBLISH", 3, (db, a) => db.publish(a[0], a[1]));

// --- strings ---

const _getString = (db: _Db, key: string) => db.read(key, "string") ?? null;

/** The absolute expiry (epoch ms) of SET/GETEX/SETEX options `EX`, `PX`, `EXAT`, `PXAT`. */
function _expiryAt(db: _Db, option: string, text: string, command: string): number {
  const n = _bigint(text);
  const ms = option === "EX" || option === "EXAT" ? n * 1000n : n;
  const at = option.endsWith("AT") ? ms : ms + BigInt(db.now);
  if (n <= 0n || at > INT64_MAX) _fail(`ERR invalid expire time in '${command}' command`);
  return Number(at);
}

_def("GET", 2, (db, a) => _getString(db, a[0]));
_def("SET", -3, (db, a) => {
  const [key, value] = a;
  let cond: string | undefined, get = false, at: number | undefined;
  let expiry: string | undefined;
  for (let i = 2; i < a.length; i++) {
    const opt = a[i].toUpperCase();
    if ((opt === "NX" || opt === "XX") && !cond) cond = opt;
    else if (opt === "GET" && !get) get = true;
    else if (opt === "KEEPTTL" && !expiry) expiry = opt;
    else if (["EX", "PX", "EXAT", "PXAT"].includes(opt) && !expiry && i + 1 < a.length) {
      expiry = opt;
      at = _expiryAt(db, opt, a[++i], "set");
    } else _fail(SYNTAX);
  }
  const keepTtl = expiry === "KEEPTTL";
  const old = get ? _getString(db, key) : undefined;
  const exists = db.get(key) !== undefined;
  if ((cond === "NX" && exists) || (cond === "XX" && !exists)) return get ? old! : null;
  db.setString(key, value, keepTtl);
  if (at !== undefined) db.expireAt(key, at);
  return get ? old! : OK;
});
function _incrBy(db: _Db, key: string, by: bigint): number {
  const old = _getString(db, key);
  const n = (old === null ? 0n : _bigint(old)) + by;
  if (n < INT64_MIN || n > INT64_MAX) _fail(OVERFLOW);
  db.setString(key, String(n), true);
  return Number(n);
}
_def("INCR", 2, (db, a) => _incrBy(db, a[0], 1n));
_def("INCRBY", 3, (db, a) => _incrBy(db, a[0], _bigint(a[1])));

// --- hashes ---

const _newHash = () => new Map<string, string>();

function _hset(db: _Db, a: string[], name: string): number {
  if (a.length < 3 || a.length % 2 === 0) {
    _fail(`ERR wrong number of arguments for '${name}' command`);
  }
  const h = db.write(a[0], "hash", _newHash);
  let added = 0;
  for (let i = 1; i < a.length; i += 2) {
    if (!h.has(a[i])) added++;
    h.set(a[i], a[i + 1]);
  }
  return added;
}
_def("HSET", -4, (db, a) => _hset(db, a, "hset"));
_def("HGET", 3, (db, a) => db.read(a[0], "hash")?.get(a[1]) ?? null);
_def("HMGET", -3, (db, a) => {
  const h = db.read(a[0], "hash");
  return a.slice(1).map((f) => h?.get(f) ?? null);
});
_def("HGETALL", 2, (db, a) => new _Map([...(db.read(a[0], "hash") ?? [])].flat()));
_def("HVALS", 2, (db, a) => [...(db.read(a[0], "hash")?.values() ?? [])]);
_def("HDEL", -3, (db, a) => {
  const h = db.read(a[0], "hash");
  if (!h) return 0;
  const n = a.slice(1).filter((f) => h.delete(f)).length;
  db.dropIfEmpty(a[0], h.size);
  return n;
});
_def("HINCRBY", 4, (db, a) => {
  const by = _bigint(a[2]);
  const h = db.write(a[0], "hash", _newHash);
  const old = h.get(a[1]);
  const n = (old === undefined ? 0n : _bigint(old, "ERR hash value is not an integer")) + by;
  if (n < INT64_MIN || n > INT64_MAX) _fail(OVERFLOW);
  h.set(a[1], String(n));
  return Number(n);
});

// --- lists ---

const _newList = () => new Deque();

function _push(db: _Db, a: string[], left: boolean, onlyIfExists: boolean): number {
  if (onlyIfExists && !db.read(a[0], "list")) return 0;
  const list = db.write(a[0], "list", _newList);
  for (const v of a.slice(1)) left ? list.unshift(v) : list.push(v);
  return list.length;
}
_def("LPUSH", -3, (db, a) => _push(db, a, true, false));
_def("RPUSH", -3, (db, a) => _push(db, a, false, false));
function _pop(db: _Db, a: string[], left: boolean): Raw {
  if (a.length > 2) _fail(`ERR wrong number of arguments for '${left ? "lpop" : "rpop"}' command`);
  const count = a.length > 1
    ? _int(a[1], "ERR value is out of range, must be positive")
    : undefined;
  if (count !== undefined && count < 0) _fail("ERR value is out of range, must be positive");
  const list = db.read(a[0], "list");
  if (!list) return null;
  const take = () => (left ? list.shift() : list.pop())!;
  if (count === undefined) {
    const v = take();
    db.dropIfEmpty(a[0], list.length);
    return v;
  }
  const out: string[] = [];
  while (out.length < count && list.length) out.push(take());
  db.dropIfEmpty(a[0], list.length);
  return out;
}
_def("LPOP", -2, (db, a) => _pop(db, a, true));
_def("RPOP", -2, (db, a) => _pop(db, a, false));
_def("LLEN", 2, (db, a) => db.read(a[0], "list")?.length ?? 0);
/** Clamps Redis start/stop indexes (negative from the end) to `[start, end]` or undefined. */
function _range(start: number, stop: number, length: number): [number, number] | undefined {
  if (start < 0) start = Math.max(0, length + start);
  if (stop < 0) stop += length;
  if (stop >= length) stop = length - 1;
  return start > stop || start >= length ? undefined : [start, stop];
}
_def("LRANGE", 4, (db, a) => {
  const [start, stop] = [_int(a[1]), _int(a[2])];
  const list = db.read(a[0], "list");
  const r = list && _range(start, stop, list.length);
  return r ? list!.slice(r[0], r[1]) : [];
});
_def("LTRIM", 4, (db, a) => {
  const [start, stop] = [_int(a[1]), _int(a[2])];
  const list = db.read(a[0], "list");
  if (!list) return OK;
  const r = _range(start, stop, list.length);
  if (!r) {
    db.delete(a[0]);
    return OK;
  }
  const keep = r[1] - r[0] + 1;
  for (let i = 0; i < r[0]; i++) list.shift();
  while (list.length > keep) list.pop();
  return OK;
});

// --- sets ---

const _newSet = () => new Set<string>();

_def("SADD", -3, (db, a) => {
  const set = db.write(a[0], "set", _newSet);
  const before = set.size;
  for (const m of a.slice(1)) set.add(m);
  return set.size - before;
});
_def("SREM", -3, (db, a) => {
  const set = db.read(a[0], "set");
  if (!set) return 0;
  const n = a.slice(1).filter((m) => set.delete(m)).length;
  db.dropIfEmpty(a[0], set.size);
  return n;
});
_def("SISMEMBER", 3, (db, a) => db.read(a[0], "set")?.has(a[1]) ? 1 : 0);
_def("SCARD", 2, (db, a) => db.read(a[0], "set")?.size ?? 0);

// --- sorted sets ---

const _newZset = () => new SortedSet();

_def("ZADD", -4, (db, a) => {
  const flags = new Set<string>();
  let i = 1;
  for (; i < a.length; i++) {
    const f = a[i].toUpperCase();
    if (!["NX", "XX", "GT", "LT", "CH", "INCR"].includes(f)) break;
    flags.add(f);
  }
  const pairs = a.slice(i);
  if (!pairs.length || pairs.length % 2) _fail(SYNTAX);
  if (flags.has("NX") && flags.has("XX")) {
    _fail("ERR XX and NX options at the same time are not compatible");
  }
  if (
    (flags.has("GT") && flags.has("LT")) ||
    (flags.has("NX") && (flags.has("GT") || flags.has("LT")))
  ) {
    _fail("ERR GT, LT, and/or NX options at the same time are not compatible");
  }
  if (flags.has("INCR") && pairs.length > 2) {
    _fail("ERR INCR option supports a single increment-element pair");
  }
  const scores: number[] = [];
  for (let j = 0; j < pairs.length; j += 2) scores.push(_double(pairs[j]));
  const existing = db.read(a[0], "zset");
  if (!existing && flags.has("XX")) return flags.has("INCR") ? null : 0;
  const z = existing ?? db.write(a[0], "zset", _newZset);
  let added = 0, changed = 0;
  for (let j = 0; j < pairs.length; j += 2) {
    const member = pairs[j + 1];
    const old = z.score(member);
    let score = scores[j / 2];
    if (old === undefined) {
      if (flags.has("XX")) continue;
    } else if (flags.has("NX")) continue;
    if (flags.has("INCR") && old !== undefined) {
      score += old;
      if (Number.isNaN(score)) _fail("ERR resulting score is not a number (NaN)");
    }
    if (
      old !== undefined && ((flags.has("GT") && score <= old) || (flags.has("LT") && score >= old))
    ) {
      continue;
    }
    if (old === undefined) added++;
    else if (old !== score) changed++;
    z.set(member, score);
    if (flags.has("INCR")) return new _Double(score);
  }
  db.dropIfEmpty(a[0], z.size);
  if (flags.has("INCR")) return null;
  return flags.has("CH") ? added + changed : added;
});
_def("ZREM", -3, (db, a) => {
  const z = db.read(a[0], "zset");
  if (!z) return 0;
  const n = a.slice(1).filter((m) => z.delete(m)).length;
  db.dropIfEmpty(a[0], z.size);
  return n;
});
_def("ZSCORE", 3, (db, a) => {
  const s = db.read(a[0], "zset")?.score(a[1]);
  return s === undefined ? null : new _Double(s);
});
_def("ZCARD", 2, (db, a) => db.read(a[0], "zset")?.size ?? 0);

/** A score bound of ZRANGEBYSCORE: `-inf`, `+inf`, `1.5` or exclusive `(1.5`. */
function _bound(text: string): [number, boolean] {
  const exclusive = text.startsWith("(");
  const value = parseDouble(exclusive ? text.slice(1) : text);
  if (value === undefined) _fail("ERR min or max is not a float");
  return [value!, exclusive];
}
/** Ranks [first, last] of the members between two score bounds, or undefined if none. */
function _scoreRange(z: SortedSet, min: string, max: string): [number, number] | undefined {
  const [lo, loEx] = _bound(min);
  const [hi, hiEx] = _bound(max);
  const first = z.lowerRank(lo, loEx);
  const last = z.upperRank(hi, hiEx);
  return first <= last ? [first, last] : undefined;
}

interface RangeOptions {
  by: "rank" | "score";
  rev: boolean;
  withScores: boolean;
  limit?: [number, number];
}
/** ZRANGE and its older forms: start and stop are ranks or score bounds (max first if rev). */
function _zrange(db: _Db, key: string, start: string, stop: string, o: RangeOptions): Raw {
  let items: ScoredMember[] = [];
  if (o.by === "rank") {
    const [from, to] = [_int(start), _int(stop)];
    const z = db.read(key, "zset");
    const r = z && _range(from, to, z.size);
    if (r) {
      items = o.rev
        ? z!.slice(z!.size - 1 - r[1], z!.size - 1 - r[0]).reverse()
        : z!.slice(r[0], r[1]);
    }
  } else {
    const [min, max] = o.rev ? [stop, start] : [start, stop];
    _bound(min);
    _bound(max);
    const z = db.read(key, "zset");
    const r = z && _scoreRange(z, min, max);
    if (r) {
      let [offset, count] = o.limit ?? [0, -1];
      if (offset < 0) return o.withScores ? new _Pairs([]) : [];
      const total = r[1] - r[0] + 1;
      if (count < 0 || offset + count > total) count = total - offset;
      if (count > 0) {
        items = o.rev
          ? z!.slice(r[1] - offset - count + 1, r[1] - offset).reverse()
          : z!.slice(r[0] + offset, r[0] + offset + count - 1);
      }
    }
  }
  return o.withScores ? new _Pairs(items) : items.map((x) => x.member);
}
function _rangeOptions(a: string[], from: number, o: RangeOptions, allowBy: boolean): RangeOptions {
  for (let i = from; i < a.length; i++) {
    const opt = a[i].toUpperCase();
    if (opt === "WITHSCORES") o.withScores = true;
    else if (opt === "LIMIT" && i + 2 < a.length) {
      o.limit = [_int(a[i + 1]), _int(a[i + 2])];
      i += 2;
    } else if (allowBy && opt === "BYSCORE") o.by = "score";
    else if (allowBy && opt === "REV") o.rev = true;
    else _fail(SYNTAX);
  }
  if (o.limit && o.by === "rank") {
    _fail("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX");
  }
  return o;
}
_def("ZRANGE", -4, (db, a) => {
  const o = _rangeOptions(a, 3, { by: "rank", rev: false, withScores: false }, true);
  return _zrange(db, a[0], a[1], a[2], o);
});
_def("ZREVRANGE", -4, (db, a) => {
  const o = _rangeOptions(a, 3, { by: "rank", rev: true, withScores: false }, false);
  if (o.limit) _fail(SYNTAX);
  return _zrange(db, a[0], a[1], a[2], o);
});
_def("ZRANGEBYSCORE", -4, (db, a) => {
  const o = _rangeOptions(a, 3, { by: "score", rev: false, withScores: false }, false);
  return _zrange(db, a[0], a[1], a[2], o);
});
_def("ZREMRANGEBYRANK", 4, (db, a) => {
  const [start, stop] = [_int(a[1]), _int(a[2])];
  const z = db.read(a[0], "zset");
  const r = z && _range(start, stop, z.size);
  if (!r) return 0;
  const n = z!.removeRange(r[0], r[1]);
  db.dropIfEmpty(a[0], z!.size);
  return n;
});

/** The commands the embedded store emulates, sorted. */
export const EMULATED_COMMANDS: readonly string[] = [...COMMANDS.keys()].sort();

/** Replies of a MULTI whose commands failed at EXEC, like node-redis's `MultiErrorReply`. */
export class MultiError extends Error {
  /**
   * @param replies every reply, with an Error in place of each failed command
   * @param errorIndexes the positions of the failed commands
   */
  constructor(readonly replies: (Reply | Error)[], readonly errorIndexes: number[]) {
    super(
      `${errorIndexes.length} commands failed, see .replies and .errorIndexes for more information`,
    );
    this.name = "MultiErrorReply";
  }
}

/** Options of `MemoryStore`. */
export interface MemoryStoreOptions {
  /**
   * The reply shapes of `command`, `multi` and `pipeline`: 2 (default, as RedisStore gives them:
   * it speaks RESP2) or 3 (as node-redis gives them over RESP3: scores as numbers, WITHSCORES as
   * pairs). Scripts always see RESP2, like `redis.call` in Lua.
   */
  resp?: 2 | 3;
  /**
   * The server clock in epoch ms (fractions allowed): what `TIME` answers and what expiry is
   * measured with. Default `Date.now`; tests pass a manual clock to drive scripts' time.
   */
  clock?: () => number;
  /** Where scripts' `redis.log` goes (the Redis server log); dropped by default. */
  log?: ScriptLog;
}

/** The SHA1 of each script's source, computed once. */
const _shas = new WeakMap<Script, string>();

/** The Store port in process memory: a synchronous Redis emulation running scripts' own Lua. */
export class MemoryStore implements Store {
  readonly kind = "memory" as const;
  #db: _Db;
  #closed = false;
  #sweeper: ReturnType<typeof setInterval>;
  #shape: (raw: Raw) => Reply;
  #channels = new Map<string, Set<(message: string) => void>>();
  #outbox: [Set<(message: string) => void>, string][] = [];
  #flushing: ReturnType<typeof setTimeout> | undefined;
  #lua: LuaScripts | undefined;
  /** Pending until the Lua VM is loaded; every call waits for it, in order. */
  #loading: Promise<void> | undefined;

  /**
   * @param options reply protocol, clock, script log (see `MemoryStoreOptions`)
   */
  constructor(options: MemoryStoreOptions = {}) {
    this.#shape = options.resp === 3 ? _resp3 : _resp2;
    this.#db = new _Db(options.clock ?? Date.now);
    this.#db.publish = (channel, message) => this.#publish(channel, message);
    this.#sweeper = setInterval(() => this.#db.sweep(), SWEEP_INTERVAL_MS);
    Deno.unrefTimer(this.#sweeper as unknown as number);
    this.#loading = loadLua().then((module) => {
      this.#loading = undefined;
      if (this.#closed) return;
      this.#lua = new LuaScripts(
        module,
        (name, args) => _script(this.#lookup(name, args, true).run(this.#db, args)),
        options.log,
      );
    });
  }

  #publish(channel: string, message: string): number {
    const listeners = this.#channels.get(channel);
    if (!listeners?.size) return 0;
    // Snapshot: listeners added after the PUBLISH do not get it, as in Redis.
    this.#outbox.push([new Set(listeners), message]);
    this.#flushing ??= setTimeout(() => this.#deliver(), 0);
    // One subscriber connection per store, as RedisStore has.
    return 1;
  }

  #deliver(): void {
    this.#flushing = undefined;
    const batch = this.#outbox;
    this.#outbox = [];
    for (const [listeners, message] of batch) {
      for (const listener of listeners) {
        try {
          listener(message);
        } catch (err) {
          // Like an exception thrown from a node-redis listener: uncaught, not swallowed.
          setTimeout(() => {
            throw err;
          }, 0);
        }
      }
    }
  }

  /** Runs `fn` now (synchronously, hence atomically) and settles a promise with its outcome. */
  #settle<T>(fn: () => T): Promise<T> {
    // Until the VM is loaded (once, at start), calls queue up behind it in their order.
    if (this.#loading) return this.#loading.then(() => this.#settle(fn));
    try {
      if (this.#closed) throw new UnavailableError("redis", "store closed");
      this.#db.now = Math.floor(this.#db.clock());
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * The command's spec, after the checks Redis makes before queueing it in a MULTI.
   *
   * @param name the command's name, any case
   * @param args its arguments (the name left out)
   */
  #lookup(name: string, args: string[], fromScript = false): Spec {
    // Scripts and the runtime name commands in upper case: one lookup, no new string.
    const spec = COMMANDS.get(name) ?? COMMANDS.get(name.toUpperCase());
    if (!spec) {
      const shown = args.slice(0, 3).map((x) => `'${x.slice(0, 128)}' `).join("");
      return _fail(
        `ERR unknown command '${name}' (not emulated by the embedded store), ` +
          `with args beginning with: ${shown}`,
      );
    }
    const n = args.length + 1;
    if (spec.arity > 0 ? n !== spec.arity : n < -spec.arity) {
      _fail(
        fromScript
          ? "ERR Wrong number of args calling Redis command from script"
          : `ERR wrong number of arguments for '${name.toLowerCase()}' command`,
      );
    }
    return spec;
  }

  /** Runs one command on the keyspace; throws Redis errors. */
  #run(command: Command): Raw {
    const args = command.map(String);
    const name = args.shift() ?? "";
    return this.#lookup(name, args).run(this.#db, args);
  }

  /** Runs every command, collecting replies, with an Error in place of each failure. */
  #batch(commands: Command[]): { replies: (Reply | Error)[]; errors: number[] } {
    const replies: (Reply | Error)[] = [];
    const errors: number[] = [];
    for (const c of commands) {
      try {
        replies.push(this.#shape(this.#run(c)));
      } catch (err) {
        errors.push(replies.length);
        replies.push(err as Error);
      }
    }
    return { replies, errors };
  }

  command(command: Command): Promise<Reply> {
    return this.#settle(() => this.#shape(this.#run(command)));
  }

  multi(commands: Command[]): Promise<Reply[]> {
    return this.#settle(() => {
      // A command Redis refuses to queue aborts the whole transaction (EXECABORT).
      for (const c of commands) this.#lookup(String(c[0] ?? ""), c.slice(1).map(String));
      const { replies, errors } = this.#batch(commands);
      if (errors.length) throw new MultiError(replies, errors);
      return replies as Reply[];
    });
  }

  pipeline(commands: Command[]): Promise<Reply[]> {
    return this.#settle(() => {
      const { replies, errors } = this.#batch(commands);
      // node-redis rejects a pipeline with its first error; every command still ran.
      if (errors.length) throw replies[errors[0]];
      return replies as Reply[];
    });
  }

  eval(script: Script, keys: string[], args: (string | number)[]): Promise<Reply> {
    // The clock is read once in #settle: like Redis, keys do not expire half-way through a script.
    return this.#settle(() => {
      let sha = _shas.get(script);
      if (!sha) _shas.set(script, sha = sha1hex(script.lua));
      try {
        return this.#lua!.run(script.lua, keys, args.map(String), sha);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        throw new Error(`Script "${script.name}" failed: ${message}`, { cause: err });
      }
    });
  }

  subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>> {
    return this.#settle(() => {
      // A wrapper of its own, so subscribing one function twice needs two unsubscribes.
      const listener = (message: string) => onMessage(message);
      let listeners = this.#channels.get(channel);
      if (!listeners) this.#channels.set(channel, listeners = new Set());
      listeners.add(listener);
      return () => {
        const set = this.#channels.get(channel);
        set?.delete(listener);
        if (set && !set.size) this.#channels.delete(channel);
        return Promise.resolve();
      };
    });
  }

  /** One process holds the only copy: there are no replicas to wait for. */
  replicate(_keys: string[]): Promise<void> {
    return this.#settle(() => {});
  }

  check(): Promise<Check> {
    return Promise.resolve(this.#closed ? { ok: false, detail: "store closed" } : { ok: true });
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#lua?.close();
    this.#lua = undefined;
    clearInterval(this.#sweeper);
    clearTimeout(this.#flushing);
    this.#flushing = undefined;
    this.#outbox = [];
    this.#channels.clear();
    return Promise.resolve();
  }
}
