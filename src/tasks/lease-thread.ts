/**
 * @module Web Worker entry: renews task leases on its own Redis connection, so a handler that
 * blocks the main thread's event loop keeps its lease (see `lease-keeper.ts`).
 */
/// <reference lib="deno.worker" />
import { RedisStore } from "../infra/redis.ts";
import { createLogger, type LogLevel } from "../log.ts";
import { TaskBroker } from "./broker.ts";
import { taskKeys } from "./keys.ts";
import { type FromThread, LeaseSet, renewEvery, type ToThread } from "./lease-keeper.ts";

let set: LeaseSet | undefined;
let store: RedisStore | undefined;
let timer: ReturnType<typeof setTimeout> | undefined;
const post = (msg: FromThread) => self.postMessage(msg);

self.onmessage = async (event: MessageEvent<ToThread>) => {
  const msg = event.data;
  if (msg.op === "init") {
    const log = createLogger(msg.logLevel as LogLevel, { component: "lease-thread" });
    store = new RedisStore(msg.redisUrl, log);
    const broker = new TaskBroker(store, taskKeys(msg.keyPrefix));
    const leases = set = new LeaseSet(msg.leaseMs);
    const tick = async () => {
      if (leases.size > 0) {
        try {
          post({ op: "renewed", ...await leases.renew(broker) });
        } catch (err) {
          log.warn("lease renewal failed", { error: err });
        }
      }
      if (set) timer = setTimeout(tick, renewEvery(msg.leaseMs));
    };
    timer = setTimeout(tick, renewEvery(msg.leaseMs));
    post({ op: "ready" });
  } else if (msg.op === "batch") {
    for (const refcode of msg.untrack) set?.untrack(refcode);
    for (const [refcode, token, until] of msg.track) set?.track(refcode, token, until);
  } else if (msg.op === "stop") {
    set = undefined;
    clearTimeout(timer);
    await store?.close();
    post({ op: "stopped" });
  }
};
