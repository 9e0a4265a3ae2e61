/**
 * @module `deno task bench <name>`: runs `scripts/bench/<name>.ts` (http, tasks, consumers,
 * scheduler, parallel), each comparing us with a baseline in the same run.
 */
const names = ["http", "tasks", "consumers", "scheduler", "parallel"];
const name = Deno.args[0];
if (!name || !names.includes(name)) {
  console.error(`Usage: deno task bench <${names.join("|")}>`);
  Deno.exit(2);
}
const out = await new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    new URL(`./bench/${name}.ts`, import.meta.url).pathname,
    ...Deno.args.slice(1),
  ],
  stdin: "inherit",
  stdout: "inherit",
  stderr: "inherit",
}).spawn().status;
Deno.exit(out.code);
