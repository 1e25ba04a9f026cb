// startManager: the store, allocator, orchestrator, dispatcher and gRPC server, wired.

import * as grpc from "@grpc/grpc-js";
import { CaServiceDef, ClusterServiceDef, DispatcherServerDef, type IdentitySource, serverCredentials } from "@vipmesh/api";
import { chmodSync, unlinkSync } from "node:fs";
import { DEFAULT_RESERVED_PORTS, parseIpv4, parseReservedPorts, parseReservedSubnets } from "@vipmesh/core";
import { Allocator, type HostReservations } from "./allocator.ts";
import { Cluster } from "./cluster.ts";
import { Dispatcher, type Fanout } from "./dispatcher.ts";
import { StatusReports } from "./status-reports.ts";
import { DEFAULT_HEARTBEAT_PERIOD_MS } from "./node-health.ts";
import { Orchestrator } from "./orchestrator.ts";
import { authInterceptor } from "./security/authz.ts";
import { CertificateAuthority, DEFAULT_CERT_VALIDITY_MS, DEFAULT_JOIN_RATE, type JoinRate, tlsDirs } from "./security/certificate-authority.ts";
import { OverlayKeys } from "./security/overlay-keys.ts";

export { DEFAULT_JOIN_RATE, type JoinRate, tlsDirs };
// for `vipmesh store` (key, migrate)
export { EtcdBackend } from "./store/etcd.ts";
export { SqliteBackend } from "./store/sqlite.ts";
export { readStoreKey, writeStoreKey } from "./store/secret-box.ts";
export { joinAsManager, managerJoinFiles } from "./security/manager-join.ts";
export { readEtcdTls } from "@vipmesh/etcd";
import { type DockerApiListener, listenDockerApi } from "./docker-api.ts";
import { Operations } from "./operations.ts";
import { caHandlers, clusterHandlers, dispatcherHandlers, type Staleness } from "./server.ts";
import { ClusterStore } from "./store/cluster-store.ts";
import { EtcdBackend } from "./store/etcd.ts";
import { readStoreKey } from "./store/secret-box.ts";
import { soloDirectory } from "./ha/directory.ts";
import { PeerImageRelay } from "./ha/peer-images.ts";
import { PeerLogRelay } from "./ha/peer-logs.ts";
import { SessionHolders } from "./ha/session-holders.ts";
import { HaRuntime } from "./ha/runtime.ts";
import { newId } from "./ids.ts";
import { managerIdentity } from "./manager-identity.ts";
import { readEtcdTls } from "@vipmesh/etcd";
import { hostname } from "node:os";

/**
 * What one message may be, each way. Requests are small (the largest are
 * agents' log chunks of 64 KiB); responses and assignments carry whole
 * views and lists, which at tens of thousands of services run to megabytes.
 */
export const MESSAGE_LIMITS = {
  "grpc.max_receive_message_length": 4 * 1024 * 1024,
  "grpc.max_send_message_length": 256 * 1024 * 1024,
} as const;

/** Where the cluster's state lives: SQLite in the data dir (one manager), or etcd (any number). */
export type StoreOptions =
  | { kind: "sqlite" }
  | {
      kind: "etcd";
      /** Client URLs of the etcd members, https://ADDR:2379. */
      endpoints: string[];
      /** The managers' etcd client identity (ca.pem, cert.pem, key.pem; `vipmesh ca issue --usage client --cn vipmesh-manager`); none: plain http (tests). */
      tlsDir?: string;
      /** The 0600 file of the key that seals the store's secrets, the same for every manager (`vipmesh store key`). */
      storeKeyFile: string;
      /** The cluster CA `vipmesh ca init` made, imported into the store on the cluster's first start. */
      caDir?: string;
    };

export interface ManagerOptions {
  /** Where the manager keeps its own files: the SQLite store, its identities. */
  dataDir: string;
  /** Default SQLite in dataDir. */
  store?: StoreOptions;
  /** The name it shows as a node of the cluster; default the machine's. */
  hostname?: string;
  /** "host:port" (port 0 picks one) or "unix:/path". */
  listen: string[];
  heartbeatPeriodMs?: number;
  restartDelayMs?: number;
  addressPool?: string;
  /** The routing mesh's subnet, used when the cluster has no ingress network yet (its first start). */
  ingressSubnet?: string;
  /** "CIDR[,CIDR…]" no overlay may overlap: the nodes' underlay, say. */
  reservedSubnets?: string;
  /** "PORT[/PROTOCOL][,…]" no service may publish, besides the manager's own ports and VXLAN's; default DEFAULT_RESERVED_PORTS (22). */
  reservedPorts?: string;
  /** How long node certificates last; default 90 days. */
  certValidityMs?: number;
  /** How often the encrypted overlays' key is replaced; default 12 h. */
  keyRotationMs?: number;
  /** Plain TCP, no certificates, every call allowed, no overlay keys: for debugging only. */
  insecure?: boolean;
  /** Joins per token and source address; default DEFAULT_JOIN_RATE (10 a minute). */
  joinRate?: JoinRate;
  /** Nodes may advertise a loopback address: every node runs on the manager's machine (tests, simulated agents). */
  allowLoopbackNodes?: boolean;
  /** Where to serve the Docker Engine API: "unix:/path" (mode 0600) or "tcp://ADDR:PORT" (mutual TLS; not with insecure). */
  dockerApi?: string[];
}

/** The IPv4 address of a "host:port" listen address; none for a socket or 0.0.0.0 (every address: the nodes' own are checked). */
function listenIpv4(listen: string): string | undefined {
  const host = /^([\d.]+):\d+$/.exec(listen)?.[1];
  return host !== undefined && host !== "0.0.0.0" && parseIpv4(host) !== undefined ? host : undefined;
}

export interface RunningManager {
  /** The bound addresses, with real ports. */
  addresses: string[];
  /** The local admin's TLS identity (ca.pem, cert.pem, key.pem); undefined with --insecure. */
  adminTlsDir: string | undefined;
  /** A read-only identity for watchers such as haproxy-gen; undefined with --insecure. */
  readonlyTlsDir: string | undefined;
  /** The Engine API's addresses as DOCKER_HOST takes them (unix:///path, tcp://ADDR:PORT with the real port). */
  dockerApi: string[];
  /** The dispatcher's last fan-outs (sessions reached, ms to derive and write), oldest first. */
  fanouts: readonly Fanout[];
  stop(): Promise<void>;
}

export async function startManager(options: ManagerOptions): Promise<RunningManager> {
  const reserved: HostReservations = {
    subnets: parseReservedSubnets(options.reservedSubnets ?? ""),
    managerAddrs: options.listen.map(listenIpv4).filter((a) => a !== undefined),
    ports: parseReservedPorts(options.reservedPorts ?? DEFAULT_RESERVED_PORTS),
  };
  const storeOptions = options.store ?? { kind: "sqlite" };
  if (storeOptions.kind === "etcd") {
    // the other managers and every agent dial the address it lists in the directory: its first host:port
    const tcp = options.listen.find((a) => !a.startsWith("unix:"));
    if (!tcp || /^(0\.0\.0\.0|\[::\]|::)?:\d+$/.test(tcp)) {
      throw new Error(`with --store etcd, the first --listen must be this manager's own host:port (not ${tcp ?? "a socket only"}): other managers and the agents dial it`);
    }
  }
  let store: ClusterStore;
  let stale: Staleness;
  try {
    ({ store, stale } = await openStore(options.dataDir, storeOptions));
  } catch (err) {
    throw new Error(`cannot open the cluster's store: ${err instanceof Error ? err.message : String(err)}`);
  }
  const close = () => store.close();
  const allocator = new Allocator({ addressPool: options.addressPool, reserved });
  allocator.restore(store);
  store.onReallocate(() => allocator.restore(store));
  const cluster = new Cluster(store, allocator, { allowLoopbackNodes: options.allowLoopbackNodes });
  try {
    await cluster.ensureIngressNetwork(options.ingressSubnet);
    await cluster.assignMissingFwmarks();
  } catch (err) {
    await close();
    throw new Error(`cannot bring the cluster up to date: ${err instanceof Error ? err.message : String(err)}`);
  }
  let ca: CertificateAuthority | undefined;
  let identity: IdentitySource | undefined;
  try {
    if (!options.insecure) {
      const source = storeOptions.kind === "etcd" ? { in: "store" as const, ...(storeOptions.caDir ? { importFrom: storeOptions.caDir } : {}) } : { in: "data-dir" as const };
      ca = await CertificateAuthority.open(options.dataDir, store, {
        source,
        ...(options.certValidityMs !== undefined ? { validityMs: options.certValidityMs } : {}),
        ...(options.joinRate ? { joinRate: options.joinRate } : {}),
        // what JoinManager gives a new manager: the store key and where etcd is (its etcd certificate is signed per join)
        ...(storeOptions.kind === "etcd" ? { managerJoin: { storeKey: readStoreKey(storeOptions.storeKeyFile), etcdEndpoints: storeOptions.endpoints } } : {}),
      });
      identity = await ca.localIdentities(options.dataDir);
    }
  } catch (err) {
    await close();
    throw new Error(`cannot set up the cluster's CA in ${options.dataDir}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const log = (line: string) => console.error(`manager: ${line}`);
  let keys: OverlayKeys | undefined;
  const me = managerIdentity(options.dataDir, storeOptions.kind === "sqlite" ? store.settings : undefined);
  const heartbeatPeriodMs = options.heartbeatPeriodMs ?? DEFAULT_HEARTBEAT_PERIOD_MS;
  const self = () => ({
    ...me,
    hostname: options.hostname ?? hostname(),
    addr: addresses.find((a) => !a.startsWith("unix:")) ?? "",
    dockerApi: dockerApi.map((l) => l.address),
  });
  // with etcd: one manager among several (lease, election, directory, node liveness); its loops run while it leads
  const ha =
    storeOptions.kind === "etcd"
      ? new HaRuntime({ id: me.id, endpoints: storeOptions.endpoints, tls: storeOptions.tlsDir ? readEtcdTls(storeOptions.tlsDir) : undefined, store, cluster, heartbeatPeriodMs, self, log })
      : undefined;
  try {
    // overlay keys only where they can travel over mutual TLS
    if (ca) keys = await OverlayKeys.open(store.settings, options.keyRotationMs, log);
    await ha?.start();
  } catch (err) {
    await ha?.stop();
    ca?.stop();
    await close();
    throw new Error(`cannot set up the overlay keys${ha ? " and the managers' election (etcd)" : ""}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const dispatcher = new Dispatcher(store, cluster, heartbeatPeriodMs, keys?.current(), ha?.liveness());
  if (ha) dispatcher.drained = (taskIds) => ha.drains.drained(taskIds);
  const orchestrator = new Orchestrator(store, allocator, cluster, { restartDelayMs: options.restartDelayMs });

  const server = new grpc.Server({
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.http2.min_ping_interval_without_data_ms": 5000,
    // calls in flight per connection (HTTP/2's advised minimum): more arrive in one read and are taken in one go, starving other callers
    "grpc.max_concurrent_streams": 100,
    ...MESSAGE_LIMITS,
    interceptors: ca ? [authInterceptor(ca)] : [],
  });
  const addresses: string[] = [];
  const insecureClusterId = ca ? "" : await store.settings.init("cluster-id", newId);
  const directory = ha?.directory ?? soloDirectory(self);
  dispatcher.managers = () => directory.list().map((m) => m.addr);
  directory.onChange(() => dispatcher.managersChanged());
  const holders = ha && new SessionHolders((n) => dispatcher.holds(n), (n) => ha.holderOf(n), identity ? { identity } : "insecure");
  const peers = holders && { logs: new PeerLogRelay(dispatcher.logs, holders, store), images: new PeerImageRelay(dispatcher.images, holders) };
  const ops = new Operations(store, cluster, dispatcher, ca, directory, insecureClusterId, peers);
  server.addService(ClusterServiceDef, clusterHandlers(store, ops, dispatcher, stale));
  server.addService(DispatcherServerDef, dispatcherHandlers(cluster, dispatcher, new StatusReports(store, cluster), ca !== undefined));
  if (ca) server.addService(CaServiceDef, caHandlers(ca));

  const dockerApi: DockerApiListener[] = [];
  try {
    for (const listen of options.listen) {
      if (listen.startsWith("unix:")) {
        try {
          unlinkSync(listen.slice(5)); // a stale socket of a previous run
        } catch {}
      }
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync(listen, serverCredentials(identity ?? "insecure"), (err, p) => (err ? reject(err) : resolve(p))),
      );
      if (listen.startsWith("unix:")) chmodSync(listen.slice(5), 0o600); // the API is the cluster's root: owner only
      addresses.push(listen.startsWith("unix:") ? listen : listen.replace(/:\d+$/, `:${port}`));
      if (!listen.startsWith("unix:")) reserved.ports.push({ port, protocol: "tcp", what: "the manager's API port" });
    }
    for (const addr of options.dockerApi ?? []) {
      const l = await listenDockerApi(addr, ops, ca, options.certValidityMs ?? DEFAULT_CERT_VALIDITY_MS);
      dockerApi.push(l);
      if (l.port !== undefined) reserved.ports.push({ port: l.port, protocol: "tcp", what: "the manager's Docker Engine API port" });
    }
  } catch (err) {
    await Promise.all(dockerApi.map((l) => l.close()));
    server.forceShutdown();
    await ha?.stop();
    ca?.stop();
    await close();
    throw new Error(`cannot listen on ${[...options.listen, ...(options.dockerApi ?? [])].join(", ")}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (ha) {
    dispatcher.start();
    const rotation = keys && { start: () => keys.start((k) => ha.everyManagerHolds(k)), stop: () => keys.stop() };
    try {
      await ha.serve([orchestrator, ha.judge, ...(rotation ? [rotation] : [])], keys && { current: () => keys.current(), publish: (k) => dispatcher.publishKeys(k) });
    } catch (err) {
      await ha.stop();
      dispatcher.stop();
      server.forceShutdown();
      ca?.stop();
      await close();
      throw new Error(`cannot join the cluster's managers (etcd): ${err instanceof Error ? err.message : String(err)}`);
    }
  } else {
    // the orchestrator subscribes first: its reconcile then runs before the dispatcher's
    // flush in the same turn, and a change and the tasks it makes reach agents as one delta
    orchestrator.start();
    dispatcher.start();
    keys?.start((k) => dispatcher.publishKeys(k));
  }

  const dirs = tlsDirs(options.dataDir);
  return {
    addresses,
    adminTlsDir: ca ? dirs.admin : undefined,
    readonlyTlsDir: ca ? dirs.readonly : undefined,
    dockerApi: dockerApi.map((l) => l.address),
    fanouts: dispatcher.fanouts,
    stop: async () => {
      await Promise.all(dockerApi.map((l) => l.close()));
      await ha?.stop(); // the leader-only loops stop, the lease goes: another manager takes over at once
      keys?.stop();
      ca?.stop();
      orchestrator.stop();
      dispatcher.stop();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      await close();
    },
  };
}

/** The store, and why answers from its cache may be out of date (etcd without quorum; never with SQLite). */
async function openStore(dataDir: string, o: StoreOptions): Promise<{ store: ClusterStore; stale: Staleness }> {
  if (o.kind === "sqlite") return { store: await ClusterStore.openSqlite(dataDir), stale: () => undefined };
  const backend = new EtcdBackend({ endpoints: o.endpoints, tls: o.tlsDir ? readEtcdTls(o.tlsDir) : undefined, storeKey: readStoreKey(o.storeKeyFile) });
  let store: ClusterStore;
  try {
    store = await ClusterStore.open(backend);
  } catch (err) {
    await backend.close();
    throw err;
  }
  const stale = () => {
    const h = backend.health();
    if (!h.ok) return `this manager cannot reach etcd's quorum (${h.reason ?? "no answer"}): it answered from its cache`;
    const behind = store.behind();
    return behind && `this manager's view may be behind: ${behind}`;
  };
  return { store, stale };
}
