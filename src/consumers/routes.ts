/**
 * @module `GET /consumers`: every consumer with its live members, lag and dead letters.
 */
import * as v from "valibot";
import { describeRoute, resolver } from "hono-openapi";
import type { AppRoutes } from "../http/env.ts";
import { listConsumers } from "./status.ts";

const Partition = v.object({ partition: v.number(), lag: v.number() });
const Summary = v.object({
  name: v.string(),
  kind: v.picklist(["consumer", "bulk-consumer"]),
  topic: v.string(),
  group: v.string(),
  members: v.array(
    v.object({ instance: v.string(), in_group: v.boolean(), partitions: v.array(Partition) }),
  ),
  lag: v.number(),
  dead_lettered: v.number(),
});

/**
 * The consumers API (read-only; the consumer roles report their state to the store).
 *
 * @param app the Hono app
 * @param rt the runtime
 */
export const consumerRoutes: AppRoutes = (app, rt) => {
  app.get(
    "/consumers",
    describeRoute({
      tags: ["consumers"],
      summary: "Consumers with their live members, lag per partition and dead-letter count",
      responses: {
        200: {
          description: "The consumers",
          content: { "application/json": { schema: resolver(v.array(Summary)) } },
        },
      },
    }),
    async (c) => c.json(await listConsumers(rt)),
  );
};
