import { test } from "uvu";
import * as assert from "uvu/assert";
import { createLogger } from "../src/log.ts";

test("createLogger() writes one JSON line per record with level filtering", () => {
  const lines: string[] = [];
  const log = createLogger("info", { role: "http" }, (l) => lines.push(l));
  log.debug("hidden");
  log.info("shown", { n: 1 });
  assert.is(lines.length, 1);
  const rec = JSON.parse(lines[0]);
  assert.is(rec.msg, "shown");
  assert.is(rec.level, "info");
  assert.is(rec.role, "http");
  assert.is(rec.n, 1);
});

test("createLogger() never writes passwords in URLs or secret fields", () => {
  const lines: string[] = [];
  const log = createLogger("debug", {}, (l) => lines.push(l)).child({ api_keys: ["k1"] });
  log.warn("connect", { url: "redis://u:hunter2@h:6379", authorization: "Bearer k1" });
  assert.not.match(lines[0], /hunter2/);
  assert.not.match(lines[0], /k1/);
});

test("createLogger() writes valid JSON whatever the fields, base fields first", () => {
  const lines: string[] = [];
  const log = createLogger("info", { role: "http" }, (l) => lines.push(l)).child({ instance: "a" });
  log.info('quote " and \\ newline\n', {
    role: "other",
    msg: "x",
    nested: { a: [1, "b"] },
    err: new Error("boom"),
  });
  log.info("plain");
  const rec = JSON.parse(lines[0]);
  assert.is(rec.role, "http");
  assert.is(rec.instance, "a");
  assert.is(rec.msg, 'quote " and \\ newline\n');
  assert.equal(rec.nested, { a: [1, "b"] });
  assert.equal(rec.err, { name: "Error", message: "boom" });
  assert.is(JSON.parse(lines[1]).msg, "plain");
});

test("stdout gets every line whole and in order: short, multi-byte, longer than a batch", async () => {
  // A child process logs to its real stdout: 3000 lines (several batches), lines of non-ASCII
  // text, and lines of 100k and 300k characters of 3 bytes each in UTF-8 (the buffer is 256 KiB).
  const code = `
    import { createLogger, flushLogs } from ${
    JSON.stringify(new URL("../src/log.ts", import.meta.url).href)
  };
    const log = createLogger("info");
    for (let i = 0; i < 3000; i++) log.info("line", { i, text: i % 7 === 0 ? "zürich 東京 🚀" : "x" });
    log.info("long", { text: "€".repeat(100_000) });
    log.info("long", { text: "€".repeat(300_000) });
    log.info("after");
    setTimeout(() => log.info("timer"), 1);
    setTimeout(() => { flushLogs(); }, 100);
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", code],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.is(out.code, 0);
  const lines = new TextDecoder().decode(out.stdout).trimEnd().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.is(lines.length, 3004);
  for (let i = 0; i < 3000; i++) {
    assert.is(lines[i].i, i);
    assert.is(lines[i].text, i % 7 === 0 ? "zürich 東京 🚀" : "x");
  }
  assert.is(lines[3000].text, "€".repeat(100_000));
  assert.is(lines[3001].text, "€".repeat(300_000));
  assert.equal(lines.slice(3002).map((l) => l.msg), ["after", "timer"]);
});

test.run();
