// A sandbox's DNS client for the lab's DNS flood test and bench/dns-flood.ts,
// run inside the sandbox (`ip netns exec NS node dns-probe.mjs …`):
//
//   node dns-probe.mjs COUNT INTERVAL_MS TIMEOUT_MS NAME[,NAME...]
//
// Asks 127.0.0.11:53 a query every INTERVAL_MS, without waiting for the one
// before: the names in turn, and every 5th a name never asked before (not
// replayed: the agent's JavaScript answers it, NXDOMAIN); every 4th over TCP
// (a connection of its own), the rest over UDP (one socket, told apart by ID).
// Once each is answered or has waited TIMEOUT_MS, prints one JSON line: per
// query {name, proto, ms (null: no answer in time), rcode, addrs}.

import dgram from "node:dgram";
import net from "node:net";

const [count, intervalMs, timeoutMs, names] = process.argv.slice(2);
const COUNT = Number(count);
const TIMEOUT_MS = Number(timeoutMs);
const NAMES = names.split(",");
const RCODES = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"];

function query(id, name) {
  const labels = name.split(".").map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, "latin1")]));
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2);
  header.writeUInt16BE(1, 4);
  return Buffer.concat([header, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

/** Past a name at `at` (labels, or a compression pointer). */
function skipName(b, at) {
  while (at < b.length) {
    const len = b[at];
    if (len === 0) return at + 1;
    if ((len & 0xc0) === 0xc0) return at + 2;
    at += 1 + len;
  }
  return at;
}

/** A reply's rcode and A addresses, sorted. */
function parse(b) {
  const addrs = [];
  let at = skipName(b, 12) + 4;
  for (let i = 0; i < b.readUInt16BE(6) && at + 10 <= b.length; i++) {
    at = skipName(b, at);
    const [type, rdlen] = [b.readUInt16BE(at), b.readUInt16BE(at + 8)];
    if (type === 1 && rdlen === 4) addrs.push([...b.subarray(at + 10, at + 14)].join("."));
    at += 10 + rdlen;
  }
  return { rcode: RCODES[b[3] & 15] ?? String(b[3] & 15), addrs: addrs.sort() };
}

const results = [];
const pending = new Map();
const udp = dgram.createSocket("udp4");
udp.on("message", (m) => pending.get(m.readUInt16BE(0))?.(m));
let left = COUNT;

function ask(i) {
  const id = i + 1;
  const name = i % 5 === 4 ? `probe-${process.pid}-${i}` : NAMES[i % NAMES.length];
  const proto = i % 4 === 3 ? "tcp" : "udp";
  const q = query(id, name);
  const t0 = performance.now();
  const r = { name, proto, ms: null, rcode: "", addrs: [] };
  results[i] = r;
  let conn;
  const done = (reply) => {
    if (!pending.has(id)) return;
    pending.delete(id);
    clearTimeout(timer);
    conn?.destroy();
    if (reply) Object.assign(r, { ms: performance.now() - t0 }, parse(reply));
    if (--left === 0) {
      process.stdout.write(`${JSON.stringify(results)}\n`);
      process.exit(0);
    }
  };
  const timer = setTimeout(() => done(undefined), TIMEOUT_MS);
  pending.set(id, done);
  if (proto === "udp") {
    udp.send(q, 53, "127.0.0.11");
    return;
  }
  conn = net.connect({ host: "127.0.0.11", port: 53 });
  let buf = Buffer.alloc(0);
  conn.on("error", () => {});
  conn.on("connect", () => conn.write(Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q])));
  conn.on("data", (d) => {
    buf = Buffer.concat([buf, d]);
    if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) done(buf.subarray(2, 2 + buf.readUInt16BE(0)));
  });
}

for (let i = 0; i < COUNT; i++) setTimeout(() => ask(i), i * Number(intervalMs));
