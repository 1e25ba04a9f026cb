// Run inside a sandbox (`ip netns exec SANDBOX node bind-helper.mjs ADDR PORT`):
// binds the embedded DNS's UDP socket and TCP listener there and hands both to
// the agent over the IPC channel, then exits. The sockets keep the sandbox's
// namespace, so the one agent process serves every sandbox. Plain .mjs so that
// it starts in a few tens of milliseconds, without tsx.

import dgram from "node:dgram";
import net from "node:net";

const [address = "127.0.0.11", portText = "53"] = process.argv.slice(2);
const port = Number(portText);

function fail(err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}

if (typeof process.send !== "function") fail("no IPC channel: run by the agent only");

const udp = dgram.createSocket({ type: "udp4", reuseAddr: true });
udp.once("error", fail);
udp.bind({ address, port }, () => {
  process.send({ kind: "udp" }, udp, (err) => {
    if (err) return fail(err);
    const tcp = net.createServer();
    tcp.once("error", fail);
    tcp.listen({ host: address, port, backlog: 128 }, () => {
      process.send({ kind: "tcp" }, tcp, (err2) => (err2 ? fail(err2) : process.exit(0)));
    });
  });
});
