// vipmesh manager: runs the control plane in this process until SIGINT/SIGTERM.

import { resolve } from "node:path";
import type { Command } from "commander";
import { grpcTarget } from "@vipmesh/api";
import { CommandFailed, UsageError } from "../errors.ts";
import { normalizeAddress } from "../host.ts";
import type { Io } from "../io.ts";
import { collect, duration, rate } from "../options.ts";
import { readJoinToken } from "./agent.ts";
import { nextSignal } from "../signals.ts";

interface ManagerOptions {
  dataDir: string;
  listen?: string[];
  heartbeatPeriod?: number;
  ingressSubnet?: string;
  reservedSubnets?: string;
  reservedPorts?: string;
  certExpiry?: number;
  keyRotation?: number;
  insecure?: boolean;
  joinRate?: { count: number; windowMs: number };
  allowLoopbackNodes?: boolean;
  dockerApi?: string[];
  store?: string;
  etcdEndpoints?: string;
  etcdTlsDir?: string;
  storeKey?: string;
  caDir?: string;
  hostname?: string;
  join?: string;
  tokenFile?: string;
}

/**
 * --join: fetches this manager's etcd client identity and the store key from a
 * running manager (its data dir keeps them; a later start needs no --join), and
 * fills in the etcd flags not given.
 */
async function joinCluster(opts: ManagerOptions): Promise<Partial<ManagerOptions>> {
  if ((opts.store ?? "sqlite") !== "etcd") throw new UsageError("--join is for managers on etcd: give --store etcd");
  if (!opts.tokenFile) throw new UsageError("--join needs --token-file FILE (a manager join token: `vipmesh join-token manager`)");
  const { joinAsManager } = await import("@vipmesh/manager");
  const joined = await joinAsManager(opts.join!, readJoinToken(opts.tokenFile), resolve(opts.dataDir)).catch((err: unknown) => {
    throw new CommandFailed(`cannot join the managers at ${opts.join}: ${err instanceof Error ? err.message : String(err)}`);
  });
  return {
    etcdEndpoints: opts.etcdEndpoints ?? joined.etcdEndpoints.join(","),
    etcdTlsDir: opts.etcdTlsDir ?? joined.etcdTlsDir,
    storeKey: opts.storeKey ?? joined.storeKeyFile,
  };
}

/** --store and its etcd flags, checked together: a flag of the other store is a mistake worth saying. */
function storeOptions(opts: ManagerOptions) {
  const kind = opts.store ?? "sqlite";
  const etcdFlags = [opts.etcdEndpoints && "--etcd-endpoints", opts.etcdTlsDir && "--etcd-tls-dir", opts.storeKey && "--store-key", opts.caDir && "--ca-dir"].filter(Boolean);
  if (kind === "sqlite") {
    if (etcdFlags.length > 0) throw new UsageError(`${etcdFlags.join(", ")} only go with --store etcd`);
    return { kind } as const;
  }
  if (kind !== "etcd") throw new UsageError(`--store ${kind}: give sqlite (one manager, the default) or etcd (several managers)`);
  const endpoints = (opts.etcdEndpoints ?? "").split(",").map((e) => e.trim()).filter(Boolean);
  if (endpoints.length === 0) throw new UsageError("--store etcd needs --etcd-endpoints https://ADDR:2379[,…]");
  for (const e of endpoints) if (!/^https?:\/\/[^/\s]+:\d+$/.test(e)) throw new UsageError(`etcd endpoint "${e}" is not https://ADDR:PORT`);
  if (!opts.storeKey) throw new UsageError("--store etcd needs --store-key FILE: the key every manager shares (make one with `vipmesh store key --out FILE`)");
  if (!opts.etcdTlsDir && endpoints.some((e) => e.startsWith("https:"))) throw new UsageError("https etcd endpoints need --etcd-tls-dir DIR (ca.pem, cert.pem, key.pem: `vipmesh ca issue --usage client --cn vipmesh-manager`)");
  return {
    kind,
    endpoints,
    storeKeyFile: resolve(opts.storeKey),
    ...(opts.etcdTlsDir ? { tlsDir: resolve(opts.etcdTlsDir) } : {}),
    ...(opts.caDir ? { caDir: resolve(opts.caDir) } : {}),
  } as const;
}

export function registerManagerCommand(program: Command, io: Io): void {
  program
    .command("manager")
    .description("Run the manager (the control plane) in the foreground")
    .requiredOption("--data-dir <dir>", "where the manager keeps the cluster state")
    .option("--listen <addr>", "serve the API on host:port or a unix socket path (repeatable)", collect)
    .option("--heartbeat-period <duration>", "how often agents report in, e.g. 5s", duration)
    .option("--ingress-subnet <cidr>", "the routing mesh's network, made on the cluster's first start (default 10.255.0.0/16)")
    .option("--reserved-subnets <cidrs>", "CIDR[,CIDR…] no overlay network may overlap, such as the nodes' own underlay (default none)")
    .option(
      "--reserved-ports <ports>",
      "PORT[/PROTOCOL][,…] no service may publish, besides the manager's own and 4789/udp (default 22: give it too with yours to keep SSH's)",
    )
    .option("--cert-expiry <duration>", "how long node certificates last (default 90 days, e.g. 2160h)", duration)
    .option("--key-rotation <duration>", "how often encrypted overlays get a new key (default 12h)", duration)
    .option("--join-rate <n/duration>", "joins with one token from one address, at most N in any DURATION (default 10/1m)", rate)
    .option(
      "--docker-api <addr>",
      "serve the Docker Engine API (docker CLI, docker stack deploy) on unix:/path (mode 0600) or tcp://ADDR:PORT (mutual TLS with the cluster's certificates; DOCKER_CERT_PATH=the admin identity dir) (repeatable)",
      collect,
    )
    .option("--store <kind>", "where the cluster's state lives: sqlite (in --data-dir; one manager, the default) or etcd (any number of managers)")
    .option("--etcd-endpoints <urls>", "with --store etcd: the etcd members' client URLs, https://ADDR:2379[,…]")
    .option("--etcd-tls-dir <dir>", "with --store etcd: this manager's etcd client identity (ca.pem, cert.pem, key.pem)")
    .option("--store-key <file>", "with --store etcd: the 0600 file of the key that seals the store's secrets, the same for every manager")
    .option("--ca-dir <dir>", "with --store etcd: the cluster CA `vipmesh ca init` made, taken into the store on the cluster's first start")
    .option("--join <addr>", "with --store etcd: join the cluster of the manager at host:port as one more manager (with --token-file: a manager token); what it gives (etcd client identity, store key) is kept in --data-dir")
    .option("--token-file <file>", "with --join: a file (mode 0600) holding the manager join token, or - for standard input (`vipmesh join-token manager` prints one)")
    .option("--hostname <name>", "the name this manager shows as a node of the cluster (default: the machine's)")
    .option("--allow-loopback-nodes", "let nodes advertise a 127.x address: only when every node runs on this machine")
    .option("--insecure", "plaintext, no certificates, every call allowed: for debugging only, never on a network anyone else can reach")
    .action(async (opts: ManagerOptions) => {
      const listen = opts.listen ?? [];
      if (listen.length === 0) throw new UsageError("give at least one --listen ADDR (host:port or a socket path)");
      if (opts.join) Object.assign(opts, await joinCluster(opts));
      const store = storeOptions(opts);
      // Loaded here so client commands do not load the manager and its database driver.
      const { startManager } = await import("@vipmesh/manager");
      if (opts.insecure) {
        io.stderr("WARNING: --insecure: the API is plaintext and unauthenticated; anyone who can reach it owns the cluster\n");
      }
      const manager = await startManager({
        dataDir: resolve(opts.dataDir),
        store,
        ...(opts.hostname !== undefined ? { hostname: opts.hostname } : {}),
        listen: listen.map((a) => grpcTarget(normalizeAddress(a, process.cwd()))),
        ...(opts.heartbeatPeriod !== undefined ? { heartbeatPeriodMs: opts.heartbeatPeriod } : {}),
        ...(opts.ingressSubnet !== undefined ? { ingressSubnet: opts.ingressSubnet } : {}),
        ...(opts.reservedSubnets !== undefined ? { reservedSubnets: opts.reservedSubnets } : {}),
        ...(opts.reservedPorts !== undefined ? { reservedPorts: opts.reservedPorts } : {}),
        ...(opts.certExpiry !== undefined ? { certValidityMs: opts.certExpiry } : {}),
        ...(opts.keyRotation !== undefined ? { keyRotationMs: opts.keyRotation } : {}),
        ...(opts.insecure ? { insecure: true } : {}),
        ...(opts.joinRate ? { joinRate: opts.joinRate } : {}),
        ...(opts.allowLoopbackNodes ? { allowLoopbackNodes: true } : {}),
        ...(opts.dockerApi ? { dockerApi: opts.dockerApi } : {}),
      }).catch((err: unknown) => {
        // e.g. the address is in use or the data directory is not writable
        throw new CommandFailed(err instanceof Error ? err.message : String(err));
      });
      for (const address of manager.addresses) io.stdout(`vipmesh manager listening on ${address}${opts.insecure ? " (INSECURE: plaintext)" : ""}\n`);
      for (const address of manager.dockerApi) io.stdout(`Docker Engine API on ${address} (DOCKER_HOST=${address})\n`);
      if (manager.adminTlsDir) io.stdout(`admin identity: ${manager.adminTlsDir} (vipmesh --tls-dir, or VIPMESH_TLS_DIR)\n`);
      const signal = await nextSignal().received;
      io.stderr(`${signal}: stopping the manager\n`);
      await manager.stop();
    });
}
