/**
 * @module The example system's entry: what `deno task start` runs and the image runs by default.
 */
import { main } from "@svc/runtime";
import { exampleSystem } from "./mod.ts";

Deno.exit(await main(exampleSystem()));
