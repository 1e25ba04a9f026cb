// A DNS client for tests, run inside a namespace (`ip netns exec NS node dns-client.mjs STEPS`).
// STEPS is JSON: [{ proto: "udp" | "tcp", hex, waitMs }]. Sends each in turn to
// 127.0.0.11:53 and prints JSON: per step, the reply as hex, null for none
// within waitMs, or { error } (e.g. ECONNREFUSED once nothing listens).

import dgram from "node:dgram";
import net from "node:net";

const steps = JSON.parse(process.argv[2] ?? "[]");
const [host, port] = ["127.0.0.11", 53];

function udp(query, waitMs) {
  return new Promise((resolve) => {
    const s = dgram.createSocket("udp4");
    const done = (v) => { clearTimeout(t); s.close(); resolve(v); };
    const t = setTimeout(() => done(null), waitMs);
    s.on("error", (e) => done({ error: e.code ?? e.message }));
    s.on("message", (m) => done(m.toString("hex")));
    s.connect(port, host, () => s.send(query));
  });
}

function tcp(query, waitMs) {
  return new Promise((resolve) => {
    const c = net.connect({ host, port });
    let buf = Buffer.alloc(0);
    const done = (v) => { clearTimeout(t); c.destroy(); resolve(v); };
    const t = setTimeout(() => done(null), waitMs);
    c.on("error", (e) => done({ error: e.code ?? e.message }));
    c.on("connect", () => {
      const frame = Buffer.alloc(2 + query.length);
      frame.writeUInt16BE(query.length, 0);
      query.copy(frame, 2);
      c.write(frame);
    });
    c.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) done(buf.subarray(2, 2 + buf.readUInt16BE(0)).toString("hex"));
    });
  });
}

const out = [];
for (const s of steps) out.push(await (s.proto === "tcp" ? tcp : udp)(Buffer.from(s.hex, "hex"), s.waitMs ?? 5000));
process.stdout.write(JSON.stringify(out));
