/**
 * @module Redis's scripting surface for the embedded store: the very Lua source of each script
 * runs on an embedded Lua VM (wasmoon: Lua 5.4 compiled to WebAssembly), with what Redis 7.0
 * gives a script: `KEYS`/`ARGV`, `redis.call`/`pcall`/`error_reply`/`status_reply`/`sha1hex`/
 * `log`, `cjson`, `bit`, the Lua↔RESP conversions of Redis (numbers truncated to integers,
 * `false` → nil, tables stop at the first nil, status and error tables), read-only globals, and
 * Lua 5.1 where 5.4 differs (`unpack`, `table.getn`, `math.pow`…; integral floats format as
 * `3`, not `3.0`, in `tostring` and in concatenation).
 *
 * One VM per store (`LuaScripts`), each script compiled once and cached by its SHA1, as Redis
 * caches it for EVALSHA.
 */
import { LuaWasm } from "wasmoon";
import { createHash } from "node:crypto";
import { formatDouble } from "./_memory-data.ts";
import type { Reply } from "./store.ts";

/** A status reply (`+OK`): a `{ok = …}` table in Lua, a plain string outside. */
export class StatusReply {
  constructor(readonly text: string) {}
}

/** A command's reply as a script sees it (RESP2). Error replies are thrown `Error`s. */
export type ScriptReply = string | number | null | StatusReply | ScriptReply[];

/**
 * Runs one command for `redis.call` (its name, then its arguments); throws an Error whose
 * message is the error reply.
 */
export type Dispatch = (name: string, args: string[]) => ScriptReply;

/** Where `redis.log` writes: level is `debug`, `verbose`, `notice` or `warning`. */
export type ScriptLog = (level: string, message: string) => void;

/** A script failed: a runtime error or an error reply it returned. */
export class ScriptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ScriptError";
  }
}

/** The hex SHA1 of a text, as `redis.sha1hex` and `SCRIPT LOAD` compute it. */
export function sha1hex(text: string | Uint8Array): string {
  return createHash("sha1").update(text).digest("hex");
}

const LUA_REGISTRYINDEX = -1001000;
const LUA_RIDX_GLOBALS = 2n;
const T_NIL = 0, T_BOOLEAN = 1, T_LIGHTUSERDATA = 2, T_NUMBER = 3, T_STRING = 4, T_TABLE = 5;
const LOG_LEVELS = ["debug", "verbose", "notice", "warning"];
/** Longest string remembered by address (see `#string`). */
const SHORT_STRING = 256;
/** Slots of the cache of short strings by address (a power of two; one string per slot). */
const STRING_SLOTS = 1 << 14;

/**
 * Lua 5.4 appends ".0" to integral floats (`tostring(3.0)` is "3.0"; Lua 5.1, hence Redis,
 * gives "3"). It decides with `strspn(buff, "-0123456789")`; emptying that set (its one copy in
 * the module's data) makes the test fail, so floats format with plain `%.14g` as in 5.1.
 */
function _patch51(bytes: Uint8Array): Uint8Array {
  const marker = new TextEncoder().encode("\0-0123456789\0");
  const found: number[] = [];
  outer: for (let i = 0; i + marker.length <= bytes.length; i++) {
    for (let j = 0; j < marker.length; j++) if (bytes[i + j] !== marker[j]) continue outer;
    found.push(i);
  }
  if (found.length !== 1) {
    throw new Error(`wasmoon: the float format marker was found ${found.length} times, not once`);
  }
  const patched = new Uint8Array(bytes);
  patched[found[0] + 1] = 0;
  return patched;
}

/**
 * The Lua module: its raw WebAssembly exports (called directly: the emscripten wrappers check
 * arguments on every call and cost more than the call) and the emscripten module for function
 * pointers.
 */
export interface LuaModule {
  // deno-lint-ignore no-explicit-any
  x: any;
  // deno-lint-ignore no-explicit-any
  module: any;
}

let _module: Promise<LuaModule> | undefined;

/** Loads the Lua WebAssembly module once per process (about 70 ms), patched for Lua 5.1. */
export function loadLua(): Promise<LuaModule> {
  return _module ??= (async () => {
    // wasmoon reads its glue.wasm itself; the patch is applied as it is instantiated, and the
    // instance's exports are kept.
    const instantiate = WebAssembly.instantiate;
    // deno-lint-ignore no-explicit-any
    let exports: any;
    const patched =
      (async (source: BufferSource | WebAssembly.Module, imports?: WebAssembly.Imports) => {
        if (!(source instanceof Uint8Array)) {
          // deno-lint-ignore no-explicit-any
          return await instantiate(source as any, imports);
        }
        const result = await instantiate(_patch51(source) as BufferSource, imports);
        exports = result.instance.exports;
        return result;
      }) as typeof WebAssembly.instantiate;
    WebAssembly.instantiate = patched;
    try {
      const module = (await LuaWasm.initialize()).module;
      if (!exports) throw new Error("wasmoon: the Lua module was not instantiated from bytes");
      return { x: exports, module };
    } finally {
      WebAssembly.instantiate = instantiate;
    }
  })();
}

/** Lua run once per VM: the sandbox and the Redis library on top of the JS functions. */
const PRELUDE = `
local call_raw, sha1, log_raw, json_decode, json_encode, null = ...
local error, type, tostring, select, string, setmetatable, rawget =
  error, type, tostring, select, string, setmetatable, rawget

-- Lua 5.1 names that 5.4 dropped, as Redis has them.
unpack = table.unpack
loadstring = function(s, name) return load(s, name, "t") end
table.getn = function(t) return #t end
table.maxn = function(t)
  local n = 0
  for k in pairs(t) do if type(k) == "number" and k > n then n = k end end
  return n
end
table.foreach = function(t, f)
  for k, v in pairs(t) do local r = f(k, v) if r ~= nil then return r end end
end
table.foreachi = function(t, f)
  for i = 1, #t do local r = f(i, t[i]) if r ~= nil then return r end end
end
math.pow = function(x, y) return x ^ y end
math.log10 = function(x) return math.log(x, 10) end
math.mod = math.fmod
string.gfind = string.gmatch
gcinfo = function() return math.floor(collectgarbage("count")) end
local getinfo = debug.getinfo
-- What Redis leaves out of its sandbox.
io, os, package, require, debug, dofile, loadfile, print, utf8, warn = nil

redis = {
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REPL_NONE = 0, REPL_AOF = 1, REPL_SLAVE = 2, REPL_REPLICA = 2, REPL_ALL = 3,
  REDIS_VERSION = "7.0.15", REDIS_VERSION_NUM = 0x07000f,
}
function redis.call(...)
  local reply, err = call_raw(...)
  if err ~= nil then error(err, 0) end
  return reply
end
function redis.pcall(...)
  local reply, err = call_raw(...)
  if err ~= nil then return {err = err} end
  return reply
end
function redis.error_reply(msg)
  if type(msg) ~= "string" then error("wrong number or type of arguments", 2) end
  -- As Redis 7.0: the first word is the error code, "ERR" when there is only one word.
  if string.sub(msg, 1, 1) == "-" then msg = string.sub(msg, 2) end
  if not string.find(msg, " ", 1, true) then msg = "ERR " .. msg end
  return {err = msg}
end
function redis.status_reply(msg)
  if type(msg) ~= "string" then error("wrong number or type of arguments", 2) end
  return {ok = msg}
end
function redis.sha1hex(s)
  if select("#", s) ~= 1 or (type(s) ~= "string" and type(s) ~= "number") then
    error("wrong number of arguments", 2)
  end
  return sha1(tostring(s))
end
function redis.log(level, ...)
  local n = select("#", ...)
  if n == 0 then error("redis.log() requires two arguments or more.", 2) end
  if type(level) ~= "number" or level < 0 or level > 3 then error("Invalid debug level.", 2) end
  local parts = {}
  for i = 1, n do parts[i] = tostring((select(i, ...))) end
  log_raw(level, table.concat(parts, " "))
end
function redis.setresp(v)
  if v ~= 2 then error("RESP3 replies in scripts are not emulated by the embedded store", 2) end
end
function redis.set_repl(_) end
function redis.replicate_commands() return true end

local function raising(f)
  return function(...)
    local value, err = f(...)
    if err ~= nil then error(err, 2) end
    return value
  end
end
cjson = { decode = raising(json_decode), encode = raising(json_encode), null = null }

-- Lua BitOp on 32-bit two's complement numbers, as Redis ships it.
local function i32(x)
  x = (math.tointeger(x) or math.floor(x + 0.5)) & 0xffffffff
  if x >= 0x80000000 then return x - 0x100000000 end
  return x
end
local function fold(op)
  return function(x, ...)
    x = i32(x)
    for i = 1, select("#", ...) do x = op(x, i32((select(i, ...)))) end
    return i32(x)
  end
end
bit = {
  tobit = i32,
  bnot = function(x) return i32(~i32(x)) end,
  band = fold(function(a, b) return a & b end),
  bor = fold(function(a, b) return a | b end),
  bxor = fold(function(a, b) return a ~ b end),
  lshift = function(x, n) return i32(i32(x) << (i32(n) & 31)) end,
  rshift = function(x, n) return i32((i32(x) & 0xffffffff) >> (i32(n) & 31)) end,
  arshift = function(x, n) return i32(i32(x) // (1 << (i32(n) & 31))) end,
  rol = function(x, n)
    n = i32(n) & 31
    x = i32(x) & 0xffffffff
    return i32((x << n) | (x >> (32 - n)))
  end,
  ror = function(x, n)
    n = i32(n) & 31
    x = i32(x) & 0xffffffff
    return i32((x >> n) | (x << (32 - n)))
  end,
  bswap = function(x)
    x = i32(x) & 0xffffffff
    return i32(((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >> 8) & 0xff00) | (x >> 24))
  end,
  tohex = function(x, n)
    n = n and i32(n) or 8
    local fmt = "%08x"
    if n < 0 then n = -n; fmt = "%08X" end
    local s = string.format(fmt, i32(x) & 0xffffffff)
    return string.sub(s, -math.min(n, 8))
  end,
}

-- Globals are read-only, and reading an unknown one is an error, as in Redis 7.
setmetatable(_G, {
  __index = function(_, name)
    error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
  end,
  __newindex = function() error("Attempt to modify a readonly table", 2) end,
  __metatable = false,
})

-- The message handler of every run: where in the script the error was raised (the first
-- frame that is neither C nor this prelude), as Redis reports it.
return function(err)
  local level, info = 2, getinfo(2, "Sl")
  while info and (info.what == "C" or info.source == "=prelude") do
    level = level + 1
    info = getinfo(level, "Sl")
  end
  return {e = err, source = info and info.source, line = info and info.currentline}
end
`;

/** One Lua VM with Redis's scripting surface, bound to one store's commands. */
export class LuaScripts {
  // deno-lint-ignore no-explicit-any
  #m: any;
  // deno-lint-ignore no-explicit-any
  #module: any;
  #heapView = new Uint8Array(0);
  #L: number;
  #dispatch: Dispatch;
  #log: ScriptLog;
  /** Compiled scripts by SHA1: registry references to their functions. */
  #compiled = new Map<string, number>();
  #scratch: number;
  #scratchSize = 1 << 12;
  #lenPtr: number;
  #functions: number[] = [];
  /** The message handler of runs (registry reference). */
  #handler: number;
  #nullPtr: number;
  #names = new Map<string, number>();
  /** The error `redis.call` raised last: it reaches the caller as is, without "ERR ". */
  #raised: string | undefined;
  /**
   * JS strings made from short Lua strings, by address (see `#string`): a direct-mapped cache,
   * the address's slot holding the last address seen there and its string.
   */
  #slotAddress = new Uint32Array(STRING_SLOTS);
  #slotText: string[] = new Array(STRING_SLOTS).fill("");
  #encoder = new TextEncoder();
  #decoder = new TextDecoder();

  /**
   * @param lua the module from `loadLua()`
   * @param dispatch runs `redis.call`'s commands
   * @param log where `redis.log` writes
   */
  constructor(lua: LuaModule, dispatch: Dispatch, log: ScriptLog = () => {}) {
    const m = this.#m = lua.x;
    this.#module = lua.module;
    this.#dispatch = dispatch;
    this.#log = log;
    this.#scratch = m.malloc(this.#scratchSize);
    this.#lenPtr = m.malloc(8);
    this.#nullPtr = 0;
    const L = this.#L = m.luaL_newstate();
    m.luaL_openlibs(L);
    this.#load(PRELUDE, "=prelude");
    const fns: ((L: number) => number)[] = [
      (L) => this.#call(L),
      (L) => {
        this.#pushString(sha1hex(this.#bytes(L, 1)));
        return 1;
      },
      (L) => {
        const level = LOG_LEVELS[m.lua_tonumberx(L, 1, 0)] ?? "notice";
        this.#log(level, this.#string(L, 2));
        return 0;
      },
      (L) => this.#guard(L, () => this.#jsonDecode(L)),
      (L) => this.#guard(L, () => this.#jsonEncode(L)),
    ];
    for (const fn of fns) {
      const pointer = this.#module.addFunction(fn, "ii");
      this.#functions.push(pointer);
      m.lua_pushcclosure(L, pointer, 0);
    }
    m.lua_pushlightuserdata(L, this.#nullPtr);
    this.#pcall(fns.length + 1, 1);
    this.#handler = m.luaL_ref(L, LUA_REGISTRYINDEX) as number;
  }

  /**
   * Runs a script atomically (synchronously) with its keys and arguments.
   *
   * @param lua the source
   * @param keys KEYS
   * @param args ARGV
   * @returns its reply, converted as Redis converts a script's return value
   * @throws ScriptError on a runtime error or a returned error reply
   */
  run(lua: string, keys: string[], args: string[], sha = sha1hex(lua)): Reply {
    const m = this.#m, L = this.#L;
    let ref = this.#compiled.get(sha);
    if (ref === undefined) {
      this.#load(lua, "@user_script");
      ref = m.luaL_ref(L, LUA_REGISTRYINDEX) as number;
      this.#compiled.set(sha, ref);
    }
    m.lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    this.#pushString("KEYS");
    this.#pushArray(keys);
    m.lua_rawset(L, -3);
    this.#pushString("ARGV");
    this.#pushArray(args);
    m.lua_rawset(L, -3);
    m.lua_settop(L, -2);
    m.lua_rawgeti(L, LUA_REGISTRYINDEX, BigInt(this.#handler));
    m.lua_rawgeti(L, LUA_REGISTRYINDEX, BigInt(ref));
    this.#raised = undefined;
    try {
      if (m.lua_pcallk(L, 0, 1, 1, 0, 0) !== 0) throw new ScriptError(this.#failure(L, sha));
      return this.#toReply(L, -1);
    } finally {
      m.lua_settop(L, 0);
    }
  }

  /** Frees the VM. */
  close(): void {
    const m = this.#m;
    if (!this.#L) return;
    m.lua_close(this.#L);
    this.#L = 0;
    for (const pointer of this.#functions) this.#module.removeFunction(pointer);
    for (const pointer of this.#names.values()) m.free(pointer);
    m.free(this.#scratch);
    m.free(this.#lenPtr);
  }

  /** Compiles a chunk and leaves its function on the stack; throws its syntax error. */
  #load(source: string, name: string): void {
    const m = this.#m, L = this.#L;
    const bytes = this.#encoder.encode(source);
    const buffer = m.malloc(bytes.length + 1);
    this.#heap().set(bytes, buffer);
    try {
      if (m.luaL_loadbufferx(L, buffer, bytes.length, this.#name(name), 0) !== 0) {
        const message = this.#string(L, -1);
        m.lua_settop(L, -2);
        throw new ScriptError(`ERR Error compiling script (new function): ${message}`);
      }
    } finally {
      m.free(buffer);
    }
  }

  #pcall(nargs: number, nresults: number): void {
    const m = this.#m, L = this.#L;
    if (m.lua_pcallk(L, nargs, nresults, 0, 0, 0) !== 0) {
      const message = this.#string(L, -1);
      m.lua_settop(L, -2);
      throw new ScriptError(message);
    }
  }

  /** The module's memory as bytes (a new view after the memory grew). */
  #heap(): Uint8Array {
    if (this.#heapView.byteLength === 0) this.#heapView = new Uint8Array(this.#m.memory.buffer);
    return this.#heapView;
  }

  /** The size_t that lua_tolstring wrote. */
  #length(): number {
    const h = this.#heap(), p = this.#lenPtr;
    return (h[p] | (h[p + 1] << 8) | (h[p + 2] << 16) | (h[p + 3] << 24)) >>> 0;
  }

  /** A NUL-terminated copy of a constant name, kept for the VM's life. */
  #name(name: string): number {
    let pointer = this.#names.get(name);
    if (pointer === undefined) {
      const bytes = this.#encoder.encode(name);
      pointer = this.#m.malloc(bytes.length + 1) as number;
      this.#heap().set(bytes, pointer);
      this.#heap()[pointer + bytes.length] = 0;
      this.#names.set(name, pointer);
    }
    return pointer;
  }

  /** `redis.call`'s body: returns the reply, or nil and the error message. */
  #call(L: number): number {
    const m = this.#m;
    let reply: ScriptReply;
    try {
      const n = m.lua_gettop(L);
      if (n === 0) {
        throw new Error("ERR Please specify at least one argument for this redis lib call");
      }
      const args: string[] = new Array(n - 1);
      let name = "";
      for (let i = 1; i <= n; i++) {
        const type = m.lua_type(L, i);
        let arg: string;
        // Redis 7.0 writes a number argument with %.17g (integers exactly up to 2^53).
        if (type === T_STRING) arg = this.#string(L, i);
        else if (type === T_NUMBER) arg = formatDouble(m.lua_tonumberx(L, i, 0));
        else throw new Error("ERR Lua redis lib command arguments must be strings or integers");
        if (i === 1) name = arg;
        else args[i - 2] = arg;
      }
      reply = this.#dispatch(name, args);
    } catch (err) {
      m.lua_pushnil(L);
      this.#raised = String(err instanceof Error ? err.message : err).replace(/\r?\n$/, "");
      this.#pushString(this.#raised);
      return 2;
    }
    this.#pushReply(reply);
    return 1;
  }

  /** Runs a JS body for Lua, turning a JS exception into (nil, message) for a Lua wrapper. */
  #guard(L: number, body: () => number): number {
    try {
      return body();
    } catch (err) {
      this.#m.lua_settop(L, 0);
      this.#m.lua_pushnil(L);
      this.#pushString(err instanceof Error ? err.message : String(err));
      return 2;
    }
  }

  #pushReply(reply: ScriptReply): void {
    const m = this.#m, L = this.#L;
    if (reply === null) m.lua_pushboolean(L, 0);
    else if (typeof reply === "string") this.#pushString(reply);
    else if (typeof reply === "number") {
      if (Number.isInteger(reply)) m.lua_pushinteger(L, BigInt(reply));
      else m.lua_pushnumber(L, reply);
    } else if (reply instanceof StatusReply) {
      m.lua_createtable(L, 0, 1);
      this.#pushString(reply.text);
      m.lua_setfield(L, -2, this.#name("ok"));
    } else {
      m.lua_checkstack(L, 4);
      m.lua_createtable(L, reply.length, 0);
      for (let i = 0; i < reply.length; i++) {
        this.#pushReply(reply[i]);
        m.lua_rawseti(L, -2, BigInt(i + 1));
      }
    }
  }

  #pushArray(items: string[]): void {
    const m = this.#m, L = this.#L;
    m.lua_createtable(L, items.length, 0);
    for (let i = 0; i < items.length; i++) {
      this.#pushString(items[i]);
      m.lua_rawseti(L, -2, BigInt(i + 1));
    }
  }

  #pushString(s: string): void {
    const m = this.#m;
    const n = s.length;
    if (n * 3 > this.#scratchSize) {
      m.free(this.#scratch);
      this.#scratchSize = n * 3 + 1024;
      this.#scratch = m.malloc(this.#scratchSize);
    }
    const heap = this.#heap();
    const at = this.#scratch;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 127) break;
      heap[at + i] = c;
    }
    if (i < n) i = this.#encoder.encodeInto(s, heap.subarray(at, at + this.#scratchSize)).written;
    const pointer = m.lua_pushlstring(this.#L, at, i);
    // The pushed string's address (Lua returns its internal copy): reading it back gives `s`.
    if (i === n && n <= SHORT_STRING) this.#remember(pointer, s);
  }

  /** The bytes of the string (or number) at `index`, copied out of the VM. */
  #bytes(L: number, index: number): Uint8Array {
    const m = this.#m;
    const pointer = m.lua_tolstring(L, index, this.#lenPtr);
    const n = this.#length();
    return this.#heap().slice(pointer, pointer + n);
  }

  /** The string (or number, formatted) at `index`, as UTF-8. */
  #string(L: number, index: number): string {
    const pointer = this.#m.lua_tolstring(L, index, this.#lenPtr);
    if (!pointer) return "";
    const n = this.#length();
    const heap = this.#heap();
    // A Lua string keeps its address while it lives, and Lua interns short ones (the same text
    // is one string): the JS string made from that address last time is reused when the bytes
    // still match (no allocation, and a key the keyspace's maps hashed stays hashed).
    const slot = (pointer >>> 3) & (STRING_SLOTS - 1);
    const cached = this.#slotAddress[slot] === pointer ? this.#slotText[slot] : undefined;
    if (cached !== undefined && cached.length === n) {
      let j = 0;
      while (j < n && cached.charCodeAt(j) === heap[pointer + j]) j++;
      if (j === n) return cached;
    }
    let ascii = true;
    for (let j = 0; j < n && ascii; j++) ascii = heap[pointer + j] < 128;
    if (!ascii) return this.#decoder.decode(heap.subarray(pointer, pointer + n));
    const text = n <= 256
      ? String.fromCharCode.apply(null, heap.subarray(pointer, pointer + n) as unknown as number[])
      : this.#decoder.decode(heap.subarray(pointer, pointer + n));
    if (n <= SHORT_STRING) this.#remember(pointer, text);
    return text;
  }

  #remember(pointer: number, text: string): void {
    const slot = (pointer >>> 3) & (STRING_SLOTS - 1);
    this.#slotAddress[slot] = pointer;
    this.#slotText[slot] = text;
  }

  /** The message of a failed run, from its handler's `{e, source, line}`, as Redis words it. */
  #failure(L: number, sha: string): string {
    const m = this.#m;
    const at = m.lua_absindex(L, -1);
    if (m.lua_type(L, at) !== T_TABLE) return `ERR ${this.#string(L, at)}`;
    m.lua_getfield(L, at, this.#name("e"));
    const text = this.#errorText(L, -1);
    const hasLine = m.lua_getfield(L, at, this.#name("line")) === T_NUMBER;
    const line = m.lua_tonumberx(L, -1, 0);
    m.lua_getfield(L, at, this.#name("source"));
    const source = this.#string(L, -1);
    return hasLine ? `${text} script: ${sha}, on ${source}:${line}.` : text;
  }

  /** A raised error's text: an error table's `err` field, else the value as text. */
  #errorText(L: number, index: number): string {
    const m = this.#m;
    const type = m.lua_type(L, index);
    if (type === T_TABLE) {
      if (m.lua_getfield(L, index, this.#name("err")) === T_STRING) return this.#string(L, -1);
      m.lua_settop(L, -2);
      return "ERR Error running script: the error is a table without an err field";
    }
    if (type === T_STRING || type === T_NUMBER) {
      const text = this.#string(L, index);
      return text === this.#raised ? text : `ERR ${text}`;
    }
    return "ERR Error running script: the error is not a string";
  }

  /** A script's return value as a reply, as Redis converts it (RESP2). */
  #toReply(L: number, index: number): Reply {
    const m = this.#m;
    const at = m.lua_absindex(L, index);
    switch (m.lua_type(L, at)) {
      case T_STRING:
        return this.#string(L, at);
      case T_NUMBER:
        return Math.trunc(m.lua_tonumberx(L, at, 0));
      case T_BOOLEAN:
        return m.lua_toboolean(L, at) ? 1 : null;
      case T_TABLE: {
        this.#pushString("err");
        if (m.lua_rawget(L, at) === T_STRING) {
          throw new ScriptError(this.#string(L, -1));
        }
        m.lua_settop(L, -2);
        this.#pushString("ok");
        if (m.lua_rawget(L, at) === T_STRING) {
          const text = this.#string(L, -1);
          m.lua_settop(L, -2);
          return text;
        }
        m.lua_settop(L, -2);
        this.#pushString("double");
        if (m.lua_rawget(L, at) === T_NUMBER) {
          const text = formatDouble(m.lua_tonumberx(L, -1, 0));
          m.lua_settop(L, -2);
          return text;
        }
        m.lua_settop(L, -2);
        m.lua_checkstack(L, 4);
        const out: Reply[] = [];
        for (let j = 1;; j++) {
          if (m.lua_rawgeti(L, at, BigInt(j)) === T_NIL) {
            m.lua_settop(L, -2);
            break;
          }
          out.push(this.#toReply(L, -1));
          m.lua_settop(L, -2);
        }
        return out;
      }
      default:
        return null;
    }
  }

  /** `cjson.decode(text)`: JSON to Lua values, `null` as `cjson.null`. */
  #jsonDecode(L: number): number {
    const m = this.#m;
    if (m.lua_gettop(L) !== 1) {
      throw new Error("bad argument #1 to 'decode' (expected 1 argument)");
    }
    const text = this.#string(L, 1);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new Error(`Expected value but found invalid token: ${(err as Error).message}`);
    }
    m.lua_settop(L, 0);
    this.#pushJson(value, 0);
    return 1;
  }

  #pushJson(value: unknown, depth: number): void {
    const m = this.#m, L = this.#L;
    if (depth > 1000) throw new Error("Found too many nested data structures (1001)");
    m.lua_checkstack(L, 4);
    if (value === null) m.lua_pushlightuserdata(L, this.#nullPtr);
    else if (typeof value === "string") this.#pushString(value);
    else if (typeof value === "number") m.lua_pushnumber(L, value);
    else if (typeof value === "boolean") m.lua_pushboolean(L, value ? 1 : 0);
    else if (Array.isArray(value)) {
      m.lua_createtable(L, value.length, 0);
      value.forEach((item, i) => {
        this.#pushJson(item, depth + 1);
        m.lua_rawseti(L, -2, BigInt(i + 1));
      });
    } else {
      const entries = Object.entries(value as Record<string, unknown>);
      m.lua_createtable(L, 0, entries.length);
      for (const [k, v] of entries) {
        this.#pushString(k);
        this.#pushJson(v, depth + 1);
        m.lua_rawset(L, -3);
      }
    }
  }

  /** `cjson.encode(value)`: Lua values to JSON as Redis's cjson writes them. */
  #jsonEncode(L: number): number {
    const m = this.#m;
    if (m.lua_gettop(L) !== 1) {
      throw new Error("bad argument #1 to 'encode' (expected 1 argument)");
    }
    const text = this.#encode(L, 1, 0);
    m.lua_settop(L, 0);
    this.#pushString(text);
    return 1;
  }

  #encode(L: number, index: number, depth: number): string {
    const m = this.#m;
    const at = m.lua_absindex(L, index);
    switch (m.lua_type(L, at)) {
      case T_NIL:
        return "null";
      case T_LIGHTUSERDATA:
        if (m.lua_touserdata(L, at) === this.#nullPtr) return "null";
        throw new Error("Cannot serialise userdata: type not supported");
      case T_BOOLEAN:
        return m.lua_toboolean(L, at) ? "true" : "false";
      case T_NUMBER: {
        const n = m.lua_tonumberx(L, at, 0);
        if (!Number.isFinite(n)) throw new Error("Cannot serialise number: must not be NaN or Inf");
        return formatDouble(n, 14);
      }
      case T_STRING:
        return JSON.stringify(this.#string(L, at)).replaceAll("/", "\\/");
      case T_TABLE:
        break;
      default:
        throw new Error(`Cannot serialise ${"function"}: type not supported`);
    }
    if (depth >= 1000) throw new Error("Cannot serialise, excessive nesting (1001)");
    m.lua_checkstack(L, 6);
    // An array when every key is a positive integer, not too sparse (cjson's defaults).
    let max = 0, items = 0, array = true;
    m.lua_pushnil(L);
    while (m.lua_next(L, at) !== 0) {
      items++;
      if (array) {
        const k = m.lua_type(L, -2) === T_NUMBER ? m.lua_tonumberx(L, -2, 0) : NaN;
        if (Number.isInteger(k) && k >= 1) max = Math.max(max, k);
        else array = false;
      }
      m.lua_settop(L, -2);
    }
    if (array && items > 0) {
      if (max > 10 && max > items * 2) {
        throw new Error("Cannot serialise table: excessively sparse array");
      }
      const parts: string[] = [];
      for (let i = 1; i <= max; i++) {
        m.lua_rawgeti(L, at, BigInt(i));
        parts.push(this.#encode(L, -1, depth + 1));
        m.lua_settop(L, -2);
      }
      return `[${parts.join(",")}]`;
    }
    const parts: string[] = [];
    m.lua_pushnil(L);
    while (m.lua_next(L, at) !== 0) {
      const keyType = m.lua_type(L, -2);
      if (keyType !== T_STRING && keyType !== T_NUMBER) {
        throw new Error("Cannot serialise table: table key must be a number or string");
      }
      // A copy of the key: lua_tolstring would turn a number key into a string in place.
      m.lua_pushvalue(L, -2);
      const key = JSON.stringify(this.#string(L, -1)).replaceAll("/", "\\/");
      m.lua_settop(L, -2);
      parts.push(`${key}:${this.#encode(L, -1, depth + 1)}`);
      m.lua_settop(L, -2);
    }
    return `{${parts.join(",")}}`;
  }
}
