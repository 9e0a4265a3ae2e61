/**
 * @module `REDIS_URL` forms: one server or cluster seeds (`redis://`, `rediss://`, a comma list
 * of hosts), or sentinels (`redis+sentinel://…/<master>`, `rediss+sentinel://`).
 */

/** One host and port. */
export interface HostPort {
  host: string;
  port: number;
}

/** A parsed `REDIS_URL`. */
export interface RedisTarget {
  /** `direct`: a server or any nodes of a cluster (detected on connect); `sentinel`: ask sentinels. */
  kind: "direct" | "sentinel";
  tls: boolean;
  username?: string;
  password?: string;
  /** Logical database (direct only; a cluster has only 0). */
  database?: number;
  /** The servers (direct) or the sentinels (sentinel), in the order given. */
  nodes: HostPort[];
  /** The master name the sentinels know (sentinel only). */
  master?: string;
}

const SCHEMES: Record<string, { kind: RedisTarget["kind"]; tls: boolean; port: number }> = {
  "redis": { kind: "direct", tls: false, port: 6379 },
  "rediss": { kind: "direct", tls: true, port: 6379 },
  "redis+sentinel": { kind: "sentinel", tls: false, port: 26379 },
  "rediss+sentinel": { kind: "sentinel", tls: true, port: 26379 },
};

function hostPort(text: string, defaultPort: number): HostPort {
  // `[::1]:6379`, `host:6379`, `host`
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-_]+)(?::(\d{1,5}))?$/.exec(text);
  if (!m) throw new Error(`"${text}" is not host[:port]`);
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (port < 1 || port > 65535) throw new Error(`port ${port} is out of range`);
  return { host: m[1].replace(/^\[|\]$/g, ""), port };
}

/**
 * Parses a `REDIS_URL`.
 *
 * @param url the value
 * @returns what to connect to
 * @throws {Error} saying what is wrong (never echoing the password)
 * @example
 * ```ts
 * parseRedisUrl("redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/mymaster");
 * // → { kind: "sentinel", tls: false, password: "pw", nodes: [...], master: "mymaster" }
 * ```
 */
export function parseRedisUrl(url: string): RedisTarget {
  const m = /^([a-z+]+):\/\/(?:([^@/]*)@)?([^/?#]*)(\/[^?#]*)?(?:\?[^#]*)?$/.exec(url.trim());
  const scheme = m && SCHEMES[m[1]];
  if (!m || !scheme) {
    throw new Error(
      "must be redis://, rediss://, redis+sentinel:// or rediss+sentinel:// followed by host:port",
    );
  }
  const [, , userinfo, hosts, path = ""] = m;
  if (hosts === "") throw new Error("names no host");
  const nodes = hosts.split(",").map((h) => hostPort(h.trim(), scheme.port));
  const target: RedisTarget = { kind: scheme.kind, tls: scheme.tls, nodes };
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(":");
    const user = decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon));
    const pass = colon < 0 ? undefined : decodeURIComponent(userinfo.slice(colon + 1));
    // `redis://secret@host` is a password alone (as redis-cli and node-redis read it).
    if (pass === undefined) target.password = user;
    else {
      if (user) target.username = user;
      target.password = pass;
    }
  }
  const segment = path.replace(/^\//, "");
  if (scheme.kind === "sentinel") {
    if (!/^[A-Za-z0-9._\-]+$/.test(segment)) {
      throw new Error("must end with /<master-name> (the name the sentinels monitor)");
    }
    target.master = segment;
  } else if (segment !== "") {
    if (!/^\d{1,5}$/.test(segment)) throw new Error("the path must be a database number");
    target.database = Number(segment);
  }
  return target;
}
