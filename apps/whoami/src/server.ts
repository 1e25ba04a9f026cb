// The whoami workload: answers HTTP and UDP on one port with who it is (host,
// task, service, addresses), so the lab and tests can see which task a virtual
// IP or published port sent them to. Modelled on traefik's whoami.

import { type Socket as UdpSocket, createSocket } from "node:dgram";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import { isIPv6 } from "node:net";
import { hostname, networkInterfaces } from "node:os";

export interface StartWhoamiOptions {
  /** TCP and UDP port; 0 picks a port free for both. */
  port: number;
  /** Address to listen on; default 0.0.0.0. */
  host?: string;
  /** Where VIPMESH_TASK_ID and VIPMESH_SERVICE come from; default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
}

export interface WhoamiServer {
  port: number;
  /** What the UDP side answers with: VIPMESH_TASK_ID, or the hostname when unset. */
  task: string;
  /** Stops accepting, lets requests in flight finish (for up to CLOSE_GRACE_MS), then resolves. */
  close(): Promise<void>;
}

/** A listener could not be opened; `code` is the errno code (EADDRINUSE, EACCES, ...). */
export class ListenError extends Error {
  override readonly name = "ListenError";
  constructor(
    message: string,
    readonly code: string | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** How long close() lets requests in flight finish before cutting their connections. */
export const CLOSE_GRACE_MS = 500;
// Longer than Node's 5 s default so a test can hold one connection open between probes.
const KEEP_ALIVE_TIMEOUT_MS = 75_000;
const MAX_HEALTH_BODY_BYTES = 64;
// With port 0 the TCP port is picked first; another process may hold the same UDP port.
const PICK_PORT_ATTEMPTS = 5;

interface Identity {
  hostname: string;
  task: string | undefined;
  service: string | undefined;
}

export async function startWhoami(options: StartWhoamiOptions): Promise<WhoamiServer> {
  const { port, host = "0.0.0.0", env = process.env } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`port must be a whole number from 0 to 65535, got ${port}`);
  }
  const identity: Identity = {
    hostname: hostname(),
    task: env.VIPMESH_TASK_ID || undefined,
    service: env.VIPMESH_SERVICE || undefined,
  };
  const task = identity.task ?? identity.hostname;
  const state = { healthy: true, closing: false };

  for (let attempt = 1; ; attempt++) {
    const http = createServer((req, res) => handleHttp(req, res, identity, state));
    http.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    const boundPort = await listenTcp(http, port, host);
    let udp: UdpSocket;
    try {
      udp = await bindUdp(boundPort, host);
    } catch (err) {
      await new Promise((resolve) => http.close(resolve));
      const retry = port === 0 && err instanceof ListenError && err.code === "EADDRINUSE" && attempt < PICK_PORT_ATTEMPTS;
      if (retry) continue;
      throw err;
    }
    const reply = Buffer.from(`task ${task}\n`);
    // A send that fails means the asker is gone; there is no one to tell.
    udp.on("message", (_msg, from) => udp.send(reply, from.port, from.address, () => {}));

    let closed: Promise<void> | undefined;
    const close = (): Promise<void> =>
      (closed ??= new Promise<void>((resolve) => {
        state.closing = true;
        const cutOff = setTimeout(() => http.closeAllConnections(), CLOSE_GRACE_MS);
        cutOff.unref();
        // http.close() drops idle keep-alive connections at once and waits for busy ones.
        const stopped = [new Promise((r) => http.close(r)), new Promise((r) => udp.close(() => r(undefined)))];
        void Promise.all(stopped).then(() => {
          clearTimeout(cutOff);
          resolve();
        });
      }));
    return { port: boundPort, task, close };
  }
}

function listenTcp(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off("listening", onListening);
      reject(listenError(err, "tcp", host, port));
    };
    const onListening = () => {
      server.off("error", onError);
      const address = server.address();
      resolve(typeof address === "object" && address !== null ? address.port : port);
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen({ port, host });
  });
}

function bindUdp(port: number, host: string): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(isIPv6(host) ? "udp6" : "udp4");
    const onError = (err: NodeJS.ErrnoException) => {
      socket.close();
      reject(listenError(err, "udp", host, port));
    };
    socket.once("error", onError);
    socket.bind({ port, address: host, exclusive: true }, () => {
      socket.off("error", onError);
      resolve(socket);
    });
  });
}

function listenError(err: NodeJS.ErrnoException, proto: "tcp" | "udp", host: string, port: number): ListenError {
  const where = `cannot listen on ${isIPv6(host) ? `[${host}]` : host}:${port}/${proto}`;
  const why =
    err.code === "EADDRINUSE"
      ? "the port is already in use"
      : err.code === "EACCES"
        ? "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        : err.code === "EADDRNOTAVAIL"
          ? "no local interface has that address"
          : err.message;
  return new ListenError(`${where}: ${why}`, err.code, { cause: err });
}

// ---- HTTP ---------------------------------------------------------------------

function handleHttp(
  req: IncomingMessage,
  res: ServerResponse,
  identity: Identity,
  state: { healthy: boolean; closing: boolean },
): void {
  const path = (req.url ?? "/").split("?")[0];
  if (path !== "/health") {
    req.resume();
    send(res, state, 200, whoamiText(req, identity));
    return;
  }
  if (req.method === "GET" || req.method === "HEAD") {
    req.resume();
    send(res, state, state.healthy ? 200 : 503, state.healthy ? "ok" : "fail");
    return;
  }
  if (req.method !== "POST") {
    req.resume();
    res.setHeader("Allow", "GET, HEAD, POST");
    send(res, state, 405, `${req.method} /health is not supported; use GET, or POST "ok" or "fail"\n`);
    return;
  }
  readSmallBody(req, MAX_HEALTH_BODY_BYTES, (body) => {
    const wanted = body?.trim();
    if (wanted === "ok" || wanted === "fail") {
      state.healthy = wanted === "ok";
      send(res, state, 200, wanted);
      return;
    }
    const got = body === undefined ? `more than ${MAX_HEALTH_BODY_BYTES} bytes` : JSON.stringify(body);
    send(res, state, 400, `POST /health wants a body of "ok" or "fail", got ${got}\n`);
  });
}

/** The traefik-whoami page: who answered, then the request as it arrived. */
function whoamiText(req: IncomingMessage, identity: Identity): string {
  const lines = [
    `Hostname: ${identity.hostname}`,
    `Task: ${identity.task ?? "-"}`,
    `Service: ${identity.service ?? "-"}`,
  ];
  // Read per request: a task's interfaces change when it joins or leaves a network.
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) lines.push(`IP: ${address.address}`);
  }
  const { remoteAddress = "?", remotePort = 0 } = req.socket;
  lines.push(`RemoteAddr: ${isIPv6(remoteAddress) ? `[${remoteAddress}]` : remoteAddress}:${remotePort}`);
  lines.push(`${req.method} ${req.url} HTTP/${req.httpVersion}`);
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) lines.push(`${raw[i]}: ${raw[i + 1]}`);
  return `${lines.join("\n")}\n`;
}

/** Calls back with the body as text, or undefined when it is longer than `limit` bytes. */
function readSmallBody(req: IncomingMessage, limit: number, done: (body: string | undefined) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on("data", (chunk: Buffer) => {
    size += chunk.length;
    if (size <= limit) chunks.push(chunk);
  });
  // No 'end' when the client goes away mid-body; then there is no one to answer.
  req.on("end", () => done(size <= limit ? Buffer.concat(chunks).toString("utf8") : undefined));
}

function send(res: ServerResponse, state: { closing: boolean }, status: number, body: string): void {
  // While closing, finish this request but do not keep its connection for another.
  if (state.closing) res.setHeader("Connection", "close");
  res.writeHead(status, {
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": Buffer.byteLength(body),
  });
  res.end(body);
}
