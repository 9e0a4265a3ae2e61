/**
 * @module Web Worker entry: renews task leases on its own Redis connection, so a handler that
 * blocks the main thread's event loop keeps its lease (see `lease-keeper.ts`).
 */
import { LeaseRenewer } from "../jobs/lease.ts";
import { RedisStore } from "../infra/redis.ts";
import { createLogger, type LogLevel } from "../log.ts";
import { TaskBroker } from "./broker.ts";
import { taskKeys } from "./keys.ts";
import {
  type FromThread,
  renewEvery,
  renewLeases,
  toLeases,
  type ToThread,
} from "./lease-renewal.ts";
import { LeaseTable, type TableEntry } from "./lease-table.ts";

let store: RedisStore | undefined;
let renewer: LeaseRenewer<TableEntry> | undefined;
/** The worker's global scope, typed here rather than by a `deno.worker` lib directive. */
const scope = globalThis as unknown as {
  postMessage(msg: FromThread): void;
  onmessage: ((event: MessageEvent<ToThread>) => void) | null;
};
const post = (msg: FromThread) => scope.postMessage(msg);

// `lease-keeper.ts` imports this file too, only so `deno compile` embeds it: there, on the
// main thread, it must do nothing.
if (import.meta.main) scope.onmessage = onMessage;

async function onMessage(event: MessageEvent<ToThread>): Promise<void> {
  const msg = event.data;
  if (msg.op === "init") {
    const log = createLogger(msg.logLevel as LogLevel, { component: "lease-thread" });
    store = new RedisStore(msg.redisUrl, log, msg.redis);
    const broker = new TaskBroker(store, taskKeys(msg.keyPrefix));
    const table = new LeaseTable(msg.table);
    renewer = new LeaseRenewer({
      held: () => table.read(),
      renew: (runs) => renewLeases(broker, runs, msg.leaseMs),
      onLost: (runs) => post({ op: "renewed", lost: toLeases(runs), cancel: [] }),
      onEnded: (runs) => post({ op: "renewed", lost: [], cancel: toLeases(runs) }),
      everyMs: renewEvery(msg.leaseMs),
      log,
    });
    renewer.start();
    post({ op: "ready" });
  } else if (msg.op === "stop") {
    await renewer?.stop();
    await store?.close();
    post({ op: "stopped" });
  }
}
