// A task hogging its DNS over TCP, for tests (`ip netns exec NS node dns-hog.mjs N HOLD_MS [trickle]`):
// opens N connections to 127.0.0.11:53 one after another and holds them; with
// "trickle", each sends the first byte of a query's length and then one byte
// every 100 ms, never a whole query. Prints "ready" once all are opened, and
// after HOLD_MS more a line of JSON { opened, open }.

import net from "node:net";

const [n, holdMs, mode] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4]];
let open = 0;
let opened = 0;
const timers = [];
for (let i = 0; i < n; i++) {
  await new Promise((resolve) => {
    const c = net.connect({ host: "127.0.0.11", port: 53 });
    c.on("error", () => {});
    c.on("connect", () => {
      opened++;
      open++;
      c.once("close", () => open--);
      if (mode === "trickle") {
        c.write(Buffer.from([0]));
        timers.push(setInterval(() => !c.destroyed && c.write(Buffer.from([64])), 100));
      }
      resolve();
    });
    c.on("close", resolve);
  });
}
process.stdout.write("ready\n");
await new Promise((r) => setTimeout(r, holdMs));
process.stdout.write(`${JSON.stringify({ opened, open })}\n`);
process.exit(0);
