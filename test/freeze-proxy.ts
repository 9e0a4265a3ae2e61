/**
 * @module A TCP proxy for tests that can freeze its connections: bytes stop flowing both ways
 * but no socket is closed, as on a network path that silently drops packets.
 */

/** A running proxy. */
export interface FreezeProxy {
  /** The port it listens on (127.0.0.1). */
  readonly port: number;
  /** Stops forwarding on every connection, open now or opened later; nothing is closed. */
  freeze(): void;
  /** Forwards again (what was held back is delivered). */
  thaw(): void;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Closes the listener and every connection. */
  close(): Promise<void>;
}

/** Ports reserved for the Redis helpers' freeze proxies. */
const FIRST_PORT = 16400, LAST_PORT = 16499;

/**
 * Starts a proxy on the first free port of 16400-16499 that forwards to `target`.
 *
 * @param target where to forward, e.g. `{ hostname: "127.0.0.1", port: 6379 }`
 * @returns the proxy
 * @example
 * ```ts
 * const proxy = startFreezeProxy({ hostname: "127.0.0.1", port: 6379 });
 * proxy.freeze(); // commands through it now hang until thaw() or close()
 * ```
 */
export function startFreezeProxy(target: { hostname: string; port: number }): FreezeProxy {
  let listener: Deno.Listener | undefined;
  for (let p = FIRST_PORT; p <= LAST_PORT && !listener; p++) {
    try {
      listener = Deno.listen({ hostname: "127.0.0.1", port: p });
    } catch (err) {
      if (!(err instanceof Deno.errors.AddrInUse)) throw err;
    }
  }
  if (!listener) throw new Error(`no free port in ${FIRST_PORT}-${LAST_PORT}`);
  const server = listener;
  const conns = new Set<Deno.Conn>();
  let frozen = false;
  let thawed: Promise<void> = Promise.resolve();
  let release = () => {};
  let accepted = 0;
  let closed = false;

  const pump = async (from: Deno.Conn, to: Deno.Conn) => {
    const buf = new Uint8Array(64 * 1024);
    try {
      while (true) {
        // Frozen: read nothing more, so the sender's data stays in the socket buffers.
        while (frozen) await thawed;
        const n = await from.read(buf);
        if (n === null) break;
        while (frozen) await thawed;
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
      }
    } catch { /* either side closed */ }
    for (const c of [from, to]) {
      try {
        c.close();
      } catch { /* already closed */ }
      conns.delete(c);
    }
  };

  const accepting = (async () => {
    for await (const client of server) {
      accepted++;
      conns.add(client);
      try {
        const upstream = await Deno.connect(target);
        conns.add(upstream);
        pump(client, upstream);
        pump(upstream, client);
      } catch {
        client.close();
        conns.delete(client);
      }
    }
  })().catch(() => {});

  return {
    port: (server.addr as Deno.NetAddr).port,
    get accepted() {
      return accepted;
    },
    freeze() {
      if (frozen) return;
      frozen = true;
      thawed = new Promise((resolve) => (release = resolve));
    },
    thaw() {
      frozen = false;
      release();
    },
    async close() {
      if (closed) return;
      closed = true;
      server.close();
      frozen = false;
      release();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      conns.clear();
      await accepting;
    },
  };
}
