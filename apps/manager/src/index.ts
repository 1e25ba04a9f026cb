// startManager: the store, allocator, orchestrator, dispatcher and gRPC server, wired.

import * as grpc from "@grpc/grpc-js";
import { ClusterServiceDef, DispatcherServiceDef } from "@vipmesh/api";
import { chmodSync, unlinkSync } from "node:fs";
import { Allocator } from "./allocator.ts";
import { Cluster } from "./cluster.ts";
import { DEFAULT_HEARTBEAT_PERIOD_MS, Dispatcher } from "./dispatcher.ts";
import { Orchestrator } from "./orchestrator.ts";
import { clusterHandlers, dispatcherHandlers } from "./server.ts";
import { ClusterStore } from "./store/cluster-store.ts";

export interface ManagerOptions {
  /** Where the SQLite database lives. */
  dataDir: string;
  /** "host:port" (port 0 picks one) or "unix:/path". */
  listen: string[];
  heartbeatPeriodMs?: number;
  restartDelayMs?: number;
  addressPool?: string;
  /** The routing mesh's subnet, used when the cluster has no ingress network yet (its first start). */
  ingressSubnet?: string;
}

export interface RunningManager {
  /** The bound addresses, with real ports. */
  addresses: string[];
  stop(): Promise<void>;
}

export async function startManager(options: ManagerOptions): Promise<RunningManager> {
  const { store, close } = ClusterStore.open(options.dataDir);
  const allocator = new Allocator({ addressPool: options.addressPool });
  allocator.restore(store);
  const cluster = new Cluster(store, allocator);
  try {
    cluster.ensureIngressNetwork(options.ingressSubnet);
    cluster.assignMissingFwmarks();
  } catch (err) {
    close();
    throw new Error(`cannot bring the cluster up to date: ${err instanceof Error ? err.message : String(err)}`);
  }
  const dispatcher = new Dispatcher(store, cluster, options.heartbeatPeriodMs ?? DEFAULT_HEARTBEAT_PERIOD_MS);
  const orchestrator = new Orchestrator(store, allocator, cluster, { restartDelayMs: options.restartDelayMs });

  const server = new grpc.Server({ "grpc.keepalive_permit_without_calls": 1, "grpc.http2.min_ping_interval_without_data_ms": 5000 });
  server.addService(ClusterServiceDef, clusterHandlers(store, cluster, dispatcher));
  server.addService(DispatcherServiceDef, dispatcherHandlers(cluster, dispatcher));

  const addresses: string[] = [];
  try {
    for (const listen of options.listen) {
      if (listen.startsWith("unix:")) {
        try {
          unlinkSync(listen.slice(5)); // a stale socket of a previous run
        } catch {}
      }
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
      );
      if (listen.startsWith("unix:")) chmodSync(listen.slice(5), 0o600); // the API is the cluster's root: owner only
      addresses.push(listen.startsWith("unix:") ? listen : listen.replace(/:\d+$/, `:${port}`));
    }
  } catch (err) {
    server.forceShutdown();
    close();
    throw new Error(`cannot listen on ${options.listen.join(", ")}: ${err instanceof Error ? err.message : String(err)}`);
  }
  // the orchestrator subscribes first: its reconcile then runs before the dispatcher's
  // flush in the same turn, and a change and the tasks it makes reach agents as one delta
  orchestrator.start();
  dispatcher.start();

  return {
    addresses,
    stop: async () => {
      orchestrator.stop();
      dispatcher.stop();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      close();
    },
  };
}
