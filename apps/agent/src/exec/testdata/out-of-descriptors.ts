// Run by run.test.ts in a process of its own: uses up every descriptor, then
// asks run() for a command, as an agent whose task exhausted its descriptors would.
import { openSync } from "node:fs";
import { run } from "../run.ts";

const held: number[] = [];
try {
  for (;;) held.push(openSync("/dev/null", "r"));
} catch {}
const outcome = await run("ip", ["-V"]).then(
  () => "ran",
  (e: Error) => `refused: ${e.message}`,
);
process.stdout.write(`${outcome}\n`);
