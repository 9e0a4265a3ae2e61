/**
 * @module The signups service's entry: `deno task start`, and what its image runs.
 */
import { main } from "@svc/runtime";
import { signupsSystem } from "./system.ts";

Deno.exit(await main(signupsSystem()));
