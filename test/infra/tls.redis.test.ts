/**
 * `rediss://` with a private CA (`REDIS_TLS_CA_FILE`): a TLS-only redis-server of this test's own
 * (port 16520) with a certificate signed by a CA made here with openssl.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { RedisStore } from "../../src/infra/redis.ts";
import { createLogger } from "../../src/log.ts";
import {
  cleanup,
  killOnCleanup,
  onCleanup,
  readyzStatus,
  spawnProgram,
  unique,
  waitFor,
} from "../helpers.ts";

test.after(cleanup);

const PORT = 16520;
const dir = Deno.makeTempDirSync({ prefix: "svc-tls-" });
onCleanup(() => Deno.remove(dir, { recursive: true }));

async function sh(script: string): Promise<void> {
  const out = await new Deno.Command("bash", { args: ["-c", script], cwd: dir, stderr: "piped" })
    .output();
  assert.is(out.code, 0, new TextDecoder().decode(out.stderr));
}

test.before(async () => {
  await sh(`
    set -e
    echo "subjectAltName=IP:127.0.0.1,DNS:localhost" > ext.cnf
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj "/CN=svc test CA" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1 -extfile ext.cnf 2>/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other-ca.pem -days 1 -subj "/CN=another CA" 2>/dev/null
  `);
  const server = new Deno.Command("redis-server", {
    args: [
      "--port",
      "0",
      "--tls-port",
      String(PORT),
      "--bind",
      "127.0.0.1",
      "--tls-cert-file",
      `${dir}/server.pem`,
      "--tls-key-file",
      `${dir}/server.key`,
      "--tls-ca-cert-file",
      `${dir}/ca.pem`,
      "--tls-auth-clients",
      "no",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  killOnCleanup(server);
  await waitFor(
    async () => {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port: PORT })).close();
        return true;
      } catch {
        return false;
      }
    },
    10_000,
    "the TLS redis-server (is redis-server built with TLS?)",
  );
});

test("RedisStore: rediss:// verified against the private CA; the system roots or another CA refuse it", async () => {
  const good = new RedisStore(`rediss://127.0.0.1:${PORT}`, createLogger("error"), {
    ca: Deno.readTextFileSync(`${dir}/ca.pem`),
  });
  onCleanup(() => good.close());
  await waitFor(async () => (await good.check()).ok, 10_000, "TLS connection with the CA");
  assert.is(await good.command(["PING"]), "PONG");

  for (const ca of [undefined, Deno.readTextFileSync(`${dir}/other-ca.pem`)]) {
    const bad = new RedisStore(`rediss://127.0.0.1:${PORT}`, createLogger("error"), { ca });
    onCleanup(() => bad.close());
    const check = await waitFor(
      async () => {
        const c = await bad.check();
        return c.detail && c.detail !== "not connected" ? c : undefined;
      },
      10_000,
      "a certificate error",
    );
    assert.is(check.ok, false);
    assert.match(check.detail!, /certificate|self.signed|unknown ca|issuer/i);
  }
});

test("the program with REDIS_TLS_CA_FILE is ready and stores work over TLS", async () => {
  const p = await spawnProgram({
    ROLE: "http",
    REDIS_URL: `rediss://127.0.0.1:${PORT}`,
    REDIS_TLS_CA_FILE: `${dir}/ca.pem`,
    KEY_PREFIX: unique("t"),
  });
  await waitFor(
    async () => (await readyzStatus(p.url)) === 200,
    15_000,
    "ready over TLS",
  );
  const r = await fetch(`${p.url}/tasks/sleep`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ms: 1 }),
  });
  assert.is(r.status, 202);
  await r.body?.cancel();
  assert.is((await p.stop()).code, 0);
});

test.run();
