/**
 * applyOnce(), the same tests on the embedded store and on Redis.
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { applyOnce } from "../../src/consumers/once.ts";
import { APPLIED } from "../../src/consumers/define.ts";
import { onceMarkerKey } from "../../src/consumers/keys.ts";
import { clusterSlot, hashTag, type Store } from "../../src/infra/store.ts";
import { backends, cleanup, storeTime, testRuntime } from "../helpers.ts";

for (const backend of backends()) {
  const it = suite(`applyOnce() on ${backend.name}`);
  it.after(cleanup);

  const setup = (store?: Store) => {
    const rt = testRuntime({ env: backend.env, store });
    const p = rt.config.keyPrefix;
    return { rt, p, marker: (id: string, tag: string) => onceMarkerKey(p, "test", id, tag) };
  };

  it("applies each identity's commands once and runs the summary with the count", async () => {
    const { rt, p, marker } = setup();
    const effects = ["a", "b", "a"].map((id) => ({ id, commands: [["RPUSH", `${p}:{l}`, id]] }));
    const summary = [["HINCRBY", `${p}:{s}`, "stored", APPLIED], [
      "HINCRBY",
      `${p}:{s}`,
      "calls",
      1,
    ]];
    assert.is(await applyOnce(rt.store, marker, effects, summary), 2);
    assert.is(await applyOnce(rt.store, marker, effects, summary), 0);
    assert.is(
      await applyOnce(
        rt.store,
        marker,
        [{ id: "c", commands: [["RPUSH", `${p}:{l}`, "c"]] }],
        summary,
      ),
      1,
    );
    assert.equal(await rt.store.command(["LRANGE", `${p}:{l}`, 0, -1]), ["a", "b", "c"]);
    assert.equal(await rt.store.command(["HMGET", `${p}:{s}`, "stored", "calls"]), ["3", "3"]);
  });

  it("a marker sits in its effect's slot; effects of several slots each apply once", async () => {
    const { rt, p, marker } = setup();
    const effects = ["u", "v", "w", "x"].map((id) => ({
      id,
      commands: [["SET", `${p}:{${id}}:value`, id], ["INCR", `${p}:{${id}}:count`]],
    }));
    assert.is(clusterSlot(marker("u", hashTag(`${p}:{u}:value`))), clusterSlot(`${p}:{u}:value`));
    const summary = [["HINCRBY", `${p}:{s}`, "stored", APPLIED]];
    assert.is(await applyOnce(rt.store, marker, effects, summary), 4);
    assert.is(await applyOnce(rt.store, marker, effects, summary), 0);
    for (const id of ["u", "v", "w", "x"]) {
      assert.is(await rt.store.command(["GET", `${p}:{${id}}:count`]), "1");
    }
    assert.is(await rt.store.command(["HGET", `${p}:{s}`, "stored"]), "4");
  });

  it("markers expire after their time to live", async () => {
    // Keys expire on the store's clock: a manual one on the embedded engine.
    const time = storeTime(backend);
    const { rt, p, marker } = setup(time.store);
    const effect = [{ id: "x", commands: [["INCR", `${p}:{n}`]] }];
    assert.is(await applyOnce(rt.store, marker, effect, [], 50), 1);
    const ttl = Number(await rt.store.command(["PTTL", marker("x", "n")]));
    assert.ok(ttl > 0 && ttl <= 50, `ttl ${ttl}`);
    await time.elapse(120);
    assert.is(await applyOnce(rt.store, marker, effect, [], 50), 1);
    assert.is(await rt.store.command(["GET", `${p}:{n}`]), "2");
  });

  it("takes numbers and odd strings as arguments", async () => {
    const { rt, p, marker } = setup();
    const value = JSON.stringify({ q: 'say "hi"\n', n: 1.5 });
    await applyOnce(rt.store, marker, [{
      id: "o",
      commands: [["HSET", `${p}:{h}`, "v", value, "n", 42]],
    }]);
    assert.equal(await rt.store.command(["HMGET", `${p}:{h}`, "v", "n"]), [value, "42"]);
  });

  it.run();
}
