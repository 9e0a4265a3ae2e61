/**
 * The README's "Build your own service", from an empty folder outside the repository: the
 * guide's files (`docs/guide/`) are copied there with an import map naming only the runtime
 * (linked to this checkout as the published package would be) and valibot, their unit tests
 * run, and the app is started embedded and on real Redis + Kafka with `TOPIC_PREFIX`.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  cleanup,
  deleteKeys,
  deleteTopicsLater,
  getJson,
  KAFKA_BROKERS,
  onCleanup,
  postJson,
  type Program,
  REDIS_URL,
  ROOT,
  spawnProgram,
  testRuntime,
  unique,
  waitFor,
} from "../helpers.ts";

test.after(cleanup);

const GUIDE = `${ROOT}docs/guide`;

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.isDirectory) await copyDir(`${from}/${entry.name}`, `${to}/${entry.name}`);
    else await Deno.copyFile(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
}

/** The guide's folder, copied outside the repository, with the runtime linked. */
async function guideApp(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "svc-guide-" });
  onCleanup(() => Deno.remove(dir, { recursive: true }));
  assert.not.ok(dir.startsWith(ROOT), "the app lives outside the repository");
  await copyDir(GUIDE, dir);
  const config = JSON.parse(await Deno.readTextFile(`${dir}/deno.json`));
  assert.equal(
    Object.keys(config.imports).filter((k) => !k.startsWith("@svc/runtime")),
    ["valibot"],
    "the import map names the runtime and the app's own valibot, nothing else",
  );
  config.links = [ROOT];
  await Deno.writeTextFile(`${dir}/deno.json`, JSON.stringify(config, null, 2));
  return dir;
}

/** What every start of the guide's app must show, embedded or on the real engines. */
async function exercise(app: Program, serviceName: string): Promise<void> {
  const res = await fetch(`${app.url}/openapi.json`);
  const doc = await res.json();
  assert.is(res.status, 200, JSON.stringify(doc));
  assert.is(doc.info.title, serviceName);
  const paths = Object.keys(doc.paths);
  assert.ok(paths.includes("/signups"), paths.join(" "));
  assert.ok(paths.includes("/tasks/welcome"), paths.join(" "));
  assert.ok(paths.includes("/parallel-tasks"), paths.join(" "));
  assert.not.ok(paths.some((p) => p.startsWith("/orders") || p.startsWith("/events")));
  assert.is((await fetch(`${app.url}/orders/x`)).status, 404, "no example route");

  const email = `${unique("u")}@example.com`;
  const accepted = await postJson(`${app.url}/signups`, { email });
  assert.is(accepted.status, 202, await accepted.text());
  await waitFor(
    async () => (await getJson(`${app.url}/signups/${email}`)).welcomed,
    30_000,
    "the signup consumed and its welcome task run",
  );

  const started = await postJson(`${app.url}/parallel-tasks`, {
    task_id: "sum-squares",
    worker_count: 2,
    input: { n: 1000 },
  });
  const body = await started.text();
  assert.is(started.status, 202, body);
  const { refcode } = JSON.parse(body);
  const run = await waitFor(
    async () => {
      const r = await getJson(`${app.url}/parallel-tasks/${refcode}`);
      return r.status === "completed" && r;
    },
    30_000,
    "the parallel run",
  );
  assert.equal(run.result, { sum: 332_833_500 });

  const schedules = await getJson(`${app.url}/schedules`);
  assert.equal(schedules.map((s: { name: string }) => s.name), ["digest"]);
}

test("the README quotes every file of the guide as it is", async () => {
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  const section = readme.slice(readme.indexOf("## Build your own service"));
  for (
    const file of [
      "deno.json",
      "system.ts",
      "workers/squares.ts",
      "main.ts",
      "system_test.ts",
      "Dockerfile",
    ]
  ) {
    const text = (await Deno.readTextFile(`${GUIDE}/${file}`)).trimEnd();
    assert.ok(section.includes(text), `README quotes docs/guide/${file} word for word`);
  }
});

test("the guide's unit tests pass in a folder outside the repository", async () => {
  const dir = await guideApp();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["test", "-A"],
    cwd: dir,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.is(out.code, 0, text);
  assert.match(text, /ok \| 4 passed \| 0 failed/);
});

test("the guide's app serves its own routes only, embedded", async () => {
  const dir = await guideApp();
  const serviceName = unique("signups");
  const app = await spawnProgram({ SERVICE_NAME: serviceName, KEY_PREFIX: unique("t") }, {
    entry: "main.ts",
    cwd: dir,
    timeoutMs: 120_000,
  });
  await exercise(app, serviceName);
  const listening = JSON.parse(app.logs.find((l) => l.includes('"listening"'))!);
  assert.is(listening.service, serviceName, "SERVICE_NAME is every log record's service");
  assert.is((await app.stop()).code, 0);
});

test("the guide's app on real Redis + Kafka: rt.bus publishes under TOPIC_PREFIX to its consumer", async () => {
  const dir = await guideApp();
  const serviceName = unique("signups");
  const prefix = unique("t");
  const topicPrefix = `${prefix}.`;
  deleteTopicsLater(["signups", "signups.dlq"].map((t) => topicPrefix + t));
  const rt = testRuntime({ redis: true, env: { KEY_PREFIX: prefix } });
  onCleanup(() => deleteKeys(rt, `${prefix}:*`));
  const app = await spawnProgram({
    SERVICE_NAME: serviceName,
    KEY_PREFIX: prefix,
    TOPIC_PREFIX: topicPrefix,
    REDIS_URL,
    KAFKA_BROKERS,
  }, { entry: "main.ts", cwd: dir, timeoutMs: 120_000 });
  await exercise(app, serviceName);

  const { default: kafkajs } = await import("kafkajs");
  const admin = new kafkajs.Kafka({
    brokers: KAFKA_BROKERS.split(","),
    logLevel: kafkajs.logLevel.NOTHING,
  }).admin();
  await admin.connect();
  try {
    const topics = await admin.listTopics();
    assert.ok(topics.includes(`${topicPrefix}signups`), "published to the prefixed topic");
    const offsets = await admin.fetchTopicOffsets(`${topicPrefix}signups`);
    assert.is(offsets.reduce((n, p) => n + Number(p.high), 0), 1, "the one signup is there");
  } finally {
    await admin.disconnect();
  }
  assert.is((await app.stop()).code, 0);
});

test.run();
