/**
 * @module Web Worker entry: renews task leases on its own Redis connection, so a handler that
 * blocks the main thread's event loop keeps its lease (see `lease-keeper.ts`).
 */
/// <reference lib="deno.worker" />
import { Loop } from "../async/loop.ts";
import { RedisStore } from "../infra/redis.ts";
import { createLogger, type LogLevel } from "../log.ts";
import { TaskBroker } from "./broker.ts";
import { taskKeys } from "./keys.ts";
import { type FromThread, renewEvery, renewLeases, type ToThread } from "./lease-keeper.ts";
import { LeaseTable } from "./lease-table.ts";

let store: RedisStore | undefined;
let loop: Loop | undefined;
const post = (msg: FromThread) => self.postMessage(msg);

self.onmessage = async (event: MessageEvent<ToThread>) => {
  const msg = event.data;
  if (msg.op === "init") {
    const log = createLogger(msg.logLevel as LogLevel, { component: "lease-thread" });
    store = new RedisStore(msg.redisUrl, log);
    const broker = new TaskBroker(store, taskKeys(msg.keyPrefix));
    const table = new LeaseTable(msg.table);
    loop = new Loop(async () => {
      try {
        const renewed = await renewLeases(broker, table.read(), msg.leaseMs);
        if (renewed.lost.length || renewed.cancel.length) post({ op: "renewed", ...renewed });
      } catch (err) {
        log.warn("lease renewal failed", { error: err });
      }
    }, { everyMs: renewEvery(msg.leaseMs) });
    loop.start();
    post({ op: "ready" });
  } else if (msg.op === "stop") {
    await loop?.stop();
    await store?.close();
    post({ op: "stopped" });
  }
};
