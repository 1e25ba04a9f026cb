// A task flooding its sandbox's embedded DNS (127.0.0.11:53), run as a
// service's command for the lab's DNS flood test and bench/dns-flood.ts:
//
//   node dns-flood.mjs tcp [MAX]   holds as many TCP connections as it can, up to MAX (default 4096):
//                                  opens them 64 at a time and another whenever one closes, and
//                                  trickles a byte into each every 250 ms, never a whole query;
//   node dns-flood.mjs udp         sends queries as fast as its socket takes them (at most 256
//                                  unsent), each for a name never asked before, so that none is
//                                  replayed: every one is the agent's JavaScript's to answer.
//
// Runs until killed. Writes nothing but one JSON line of counts to stdout every
// 2 s (its log): tcp {open, opened, closed, failed}, udp {sent, answered}.
// Nothing else: no files (a task's root may be read-only), no other process.

import dgram from "node:dgram";
import net from "node:net";

const [mode, max = "4096"] = process.argv.slice(2);
const HOST = "127.0.0.11";
const PORT = 53;

/** An A query for `name` with ID `id`. */
function query(id, name) {
  const labels = name.split(".").map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, "latin1")]));
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id & 0xffff, 0);
  header.writeUInt16BE(0x0100, 2); // recursion desired
  header.writeUInt16BE(1, 4);
  return Buffer.concat([header, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

function tcp(limit) {
  const counts = { open: 0, opened: 0, closed: 0, failed: 0 };
  const conns = new Set();
  let connecting = 0;
  let retrying = false;
  const fill = () => {
    while (connecting < 64 && counts.open + connecting < limit) connect();
  };
  const connect = () => {
    connecting++;
    let up = false;
    const c = net.connect({ host: HOST, port: PORT });
    c.on("error", () => {});
    c.on("connect", () => {
      connecting--;
      up = true;
      counts.open++;
      counts.opened++;
      conns.add(c);
      c.write(Buffer.from([0])); // the first byte of a length: a query begun
      fill();
    });
    c.on("close", () => {
      if (up) {
        counts.open--;
        counts.closed++;
        conns.delete(c);
        fill(); // at once: as many as it can
      } else {
        connecting--;
        counts.failed++;
        // refused or out of descriptors: again a little later, not in a tight loop
        if (retrying) return;
        retrying = true;
        setTimeout(() => {
          retrying = false;
          fill();
        }, 100);
      }
    });
  };
  setInterval(() => {
    for (const c of conns) c.write(Buffer.from([64]));
  }, 250);
  fill();
  return counts;
}

function udp() {
  const counts = { sent: 0, answered: 0 };
  const s = dgram.createSocket("udp4");
  let unsent = 0;
  let n = 0;
  s.on("error", () => {});
  s.on("message", () => counts.answered++);
  const pump = () => {
    while (unsent < 256) {
      unsent++;
      const i = n++;
      s.send(query(i, `flood-${i.toString(36)}`), () => {
        unsent--;
        counts.sent++;
      });
    }
    setImmediate(pump);
  };
  s.connect(PORT, HOST, pump);
  return counts;
}

const counts = mode === "tcp" ? tcp(Number(max)) : mode === "udp" ? udp() : undefined;
if (!counts) {
  process.stderr.write("usage: node dns-flood.mjs tcp [MAX] | udp\n");
  process.exit(2);
}
setInterval(() => process.stdout.write(`${JSON.stringify(counts)}\n`), 2000);
