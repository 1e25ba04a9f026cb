// A userspace TCP proxy, what a naive load balancer does: accept, connect to
// the backend, copy bytes both ways. The dataplane benchmark's peer.
//
//   node tcp-proxy.mjs LISTEN_HOST:PORT BACKEND_HOST:PORT

import { createConnection, createServer } from "node:net";

const [listen, backend] = process.argv.slice(2).map((hp) => {
  const i = hp.lastIndexOf(":");
  return { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) };
});
createServer((client) => {
  const upstream = createConnection(backend);
  client.pipe(upstream).pipe(client);
  const close = () => (client.destroy(), upstream.destroy());
  client.on("error", close);
  upstream.on("error", close);
}).listen(listen.port, listen.host);
