// Asks the sandbox's embedded DNS (127.0.0.11) for NAME every 5 ms and prints
// "<wall-clock ms> <sorted addresses, comma-separated>" each time the answer
// changes, until killed. Runs inside a task sandbox, for lab-scale.ts: the
// agent publishes a sandbox's records right after its nftables rules are in
// place, so a changed answer means both are.
import { Resolver } from "node:dns/promises";

const [name] = process.argv.slice(2);
const resolver = new Resolver({ timeout: 200, tries: 1 });
resolver.setServers(["127.0.0.11"]);
let last;
for (;;) {
  const addrs = await resolver.resolve4(name).then(
    (a) => a.sort().join(","),
    () => "",
  );
  if (addrs !== last) {
    console.log(`${Date.now()} ${addrs}`);
    last = addrs;
  }
  await new Promise((r) => setTimeout(r, 5));
}
