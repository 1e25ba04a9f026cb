// A task hogging its DNS over TCP, for tests (`ip netns exec NS node dns-hog.mjs N [trickle]`):
// opens N connections to 127.0.0.11:53 one after another and holds them; with
// "trickle", each sends the first byte of a query's length and then one byte
// every 100 ms, never a whole query. Prints "ready" once all are open, then
// "open K" each time the server closes one, and when its standard input ends a
// line of JSON { opened, open }, and exits.

import net from "node:net";

const [n, mode] = [Number(process.argv[2]), process.argv[3]];
let open = 0;
let opened = 0;
let ready = false;
for (let i = 0; i < n; i++) {
  await new Promise((resolve) => {
    const c = net.connect({ host: "127.0.0.11", port: 53 });
    c.on("error", () => {});
    c.on("connect", () => {
      opened++;
      open++;
      c.once("close", () => {
        open--;
        if (ready) process.stdout.write(`open ${open}\n`);
      });
      if (mode === "trickle") {
        c.write(Buffer.from([0]));
        const t = setInterval(() => (c.destroyed ? clearInterval(t) : c.write(Buffer.from([64]))), 100);
      }
      resolve();
    });
    c.on("close", resolve);
  });
}
ready = true;
process.stdout.write(`ready\nopen ${open}\n`);
process.stdin.resume();
process.stdin.on("end", () => {
  process.stdout.write(`${JSON.stringify({ opened, open })}\n`);
  process.exit(0);
});
