// Where the manager serves the Docker Engine API (@vipmesh/engine-api):
//   - unix:/path — owner only (0600), trusted like docker.sock: whoever can
//     open it is the manager's own user;
//   - tcp://ADDR:PORT — mutual TLS only, with a certificate of the cluster's
//     CA; the caller's role (POLICY, as on gRPC) decides each route.

import { chmodSync, unlinkSync } from "node:fs";
import { createServer as createHttpServer, type RequestListener, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { hostname, networkInterfaces } from "node:os";
import { isIP } from "node:net";
import { resolve } from "node:path";
import { timerAt, type Timer } from "@vipmesh/api";
import { engineApiHandler, ROUTES } from "@vipmesh/engine-api";
import { renewalDelayMs } from "@vipmesh/pki";
import type { Operations } from "./operations.ts";
import { authorizeEngineApi } from "./security/authz.ts";
import type { CertificateAuthority } from "./security/certificate-authority.ts";

export interface DockerApiListener {
  /** As DOCKER_HOST takes it: unix:///path, tcp://ADDR:PORT (the real port). */
  address: string;
  /** The TCP port, to reserve; undefined for a socket. */
  port?: number;
  close(): Promise<void>;
}

/** "unix:/p", "unix:///p", "unix:rel" (from the working dir) → the socket path; "tcp://A:P" → host and port; anything else is refused with the forms. */
export function parseDockerApiAddress(addr: string): { path: string } | { host: string; port: number } {
  if (addr.startsWith("unix:")) return { path: resolve(addr.slice(5).replace(/^\/\/(?=\/)/, "")) };
  const m = /^tcp:\/\/(.+):(\d+)$/.exec(addr);
  if (!m) throw new Error(`--docker-api ${addr}: give unix:/path/docker.sock or tcp://ADDR:PORT`);
  return { host: m[1]!, port: Number(m[2]) };
}

/** The IPs a certificate for `host` must name: that address, or every local IPv4 for 0.0.0.0; and loopback. */
function serverIps(host: string): string[] {
  const all = host === "0.0.0.0" ? Object.values(networkInterfaces()).flatMap((l) => (l ?? []).filter((i) => i.family === "IPv4").map((i) => i.address)) : [host];
  return [...new Set([...all.filter((a) => isIP(a) !== 0), "127.0.0.1"])];
}

const closeServer = (server: Server) => new Promise<void>((resolve) => {
  server.close(() => resolve());
  server.closeAllConnections(); // streams (logs -f) would hold close() forever
});

const listening = (server: Server, ...args: unknown[]) =>
  new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    (server.listen as (...a: unknown[]) => void)(...args, () => {
      server.off("error", reject);
      resolve();
    });
  });

export async function listenDockerApi(addr: string, ops: Operations, ca: CertificateAuthority | undefined, certValidityMs: number): Promise<DockerApiListener> {
  const where = parseDockerApiAddress(addr);
  if ("path" in where) {
    const handler = engineApiHandler({ ops, routes: ROUTES, authorize: () => {} });
    const server = createHttpServer(handler);
    try {
      unlinkSync(where.path); // a stale socket of a previous run
    } catch {}
    // the API is the cluster's root: owner only, from the moment the socket exists (umask), and said again (chmod)
    const umask = process.umask(0o177);
    try {
      await listening(server, where.path);
    } finally {
      process.umask(umask);
    }
    chmodSync(where.path, 0o600);
    return { address: `unix://${where.path}`, close: () => closeServer(server) };
  }
  if (!ca) throw new Error(`--docker-api ${addr}: a manager started with --insecure serves the Engine API only on a unix socket (TCP needs mutual TLS)`);
  const handler: RequestListener = engineApiHandler({ ops, routes: ROUTES, authorize: authorizeEngineApi(ca) });
  const issue = () =>
    ca.ca.issue({ id: `manager-${ca.ca.clusterId.slice(0, 12)}`, role: "manager" }, certValidityMs, { dns: ["localhost", hostname()], ips: serverIps(where.host) });
  let identity = await issue();
  const server = createHttpsServer(
    { key: identity.keyPem, cert: identity.certPem, ca: identity.caPem, requestCert: true, rejectUnauthorized: true, minVersion: "TLSv1.2" },
    handler,
  );
  // its certificate renewed while it runs, as the gRPC listener's
  let timer: Timer | undefined;
  const schedule = (at: number) => {
    timer = timerAt(at, async () => {
      try {
        identity = await issue();
        server.setSecureContext({ key: identity.keyPem, cert: identity.certPem, ca: identity.caPem });
        schedule(Date.now() + renewalDelayMs(identity.certPem));
      } catch (err) {
        console.error(`manager: cannot renew the Engine API's certificate (retrying in a minute): ${err instanceof Error ? err.message : String(err)}`);
        schedule(Date.now() + 60_000);
      }
    });
  };
  schedule(Date.now() + renewalDelayMs(identity.certPem));
  try {
    await listening(server, where.port, where.host);
  } catch (err) {
    timer?.clear();
    throw err;
  }
  const port = (server.address() as { port: number }).port;
  return {
    address: `tcp://${where.host}:${port}`,
    port,
    close: async () => {
      timer?.clear();
      await closeServer(server);
    },
  };
}
