/**
 * @module `deno run -A scripts/slow-clients.ts [seconds]`: measures when Deno.serve closes slow
 * or idle connections (a socket sending nothing, half its headers, headers dripped a byte every
 * 2 s, 10 of 100 body bytes, keep-alive idle). On Deno 2.9.6 none closes within 150 s: there is
 * no header, body or idle timeout, hence the proxy settings in deploy/.
 */
const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
  if (req.body) await req.text().catch(() => {});
  return new Response("ok");
});
const port = server.addr.port;
const enc = new TextEncoder();
const t0 = performance.now();
async function probe(name: string, script: (c: Deno.TcpConn) => Promise<void>) {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  script(c).catch(() => {});
  const buf = new Uint8Array(4096);
  let got = "";
  try {
    while (true) {
      const n = await c.read(buf);
      if (n === null) break;
      got += new TextDecoder().decode(buf.subarray(0, n));
    }
  } catch (e) {
    got += ` [${(e as Error).name}]`;
  }
  console.log(
    name,
    "closed after",
    ((performance.now() - t0) / 1000).toFixed(1),
    "s",
    JSON.stringify(got.slice(0, 60)),
  );
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LIMIT = Number(Deno.args[0] ?? 100) * 1000;
const timer = setTimeout(() => {
  console.log("still open after", LIMIT / 1000, "s: the rest");
  Deno.exit(0);
}, LIMIT);
await Promise.all([
  probe("silent (no bytes)", async () => {}),
  probe("partial headers, no more", async (c) => {
    await c.write(enc.encode("GET / HTTP/1.1\r\nHost: x\r\n"));
  }),
  probe("headers dripped 1 byte / 2 s", async (c) => {
    await c.write(enc.encode("GET / HTTP/1.1\r\n"));
    for (;;) {
      await sleep(2000);
      await c.write(enc.encode("X"));
    }
  }),
  probe("body 10 of 100 bytes", async (c) => {
    await c.write(
      enc.encode("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789"),
    );
  }),
  probe("keep-alive idle after one request", async (c) => {
    await c.write(enc.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  }),
]);
clearTimeout(timer);
Deno.exit(0);
