// An etcd of the benchmark's own for managers to store the cluster in, set up as an
// operator would: members on 127.0.0.1 (free ports) with mutual TLS, their certificates
// and the managers' client identity from a cluster CA made as `vipmesh ca init` makes it,
// raft timing LOADED_MACHINE_TIMING, and a store key; `store` is what each manager takes.

import { type EtcdMember, startEtcd } from "@vipmesh/etcd";
import { type StoreOptions, writeStoreKey } from "@vipmesh/manager";
import { ClusterCa, ETCD_MANAGER_USER, issueEtcdCertificate } from "@vipmesh/pki/signing";
import { freePort } from "@vipmesh/testing";
import { join } from "node:path";

export interface BenchEtcd {
  members: EtcdMember[];
  /** The managers' store options: every member's client URL, the client identity, the store key and the CA (the first manager imports it). */
  store: Extract<StoreOptions, { kind: "etcd" }>;
  stop(): Promise<void>;
}

/**
 * Starts one member per name, each in `dir`/NAME, and waits until they serve. The members
 * are detached processes: the caller must stop() them, on an abort too.
 */
export async function startBenchEtcd(dir: string, names: readonly string[]): Promise<BenchEtcd> {
  const caDir = join(dir, "ca");
  await ClusterCa.create(caDir);
  const ports = await Promise.all(names.map(async () => ({ client: await freePort(), peer: await freePort() })));
  const initialCluster = Object.fromEntries(names.map((n, i) => [n, `https://127.0.0.1:${ports[i]!.peer}`]));
  const members: EtcdMember[] = [];
  const stop = async () => void (await Promise.all(members.map((m) => m.stop())));
  try {
    for (const [i, name] of names.entries()) {
      const tlsDir = join(dir, name, "tls");
      await issueEtcdCertificate(caDir, { name, usage: "peer", ips: ["127.0.0.1"] }, tlsDir);
      members.push(
        startEtcd({
          name,
          dir: join(dir, name),
          host: "127.0.0.1",
          clientPort: ports[i]!.client,
          peerPort: ports[i]!.peer,
          initialCluster,
          tls: { caFile: join(tlsDir, "ca.pem"), certFile: join(tlsDir, "cert.pem"), keyFile: join(tlsDir, "key.pem") },
        }),
      );
    }
    const tlsDir = join(dir, "etcd-client");
    await issueEtcdCertificate(caDir, { name: ETCD_MANAGER_USER, usage: "client" }, tlsDir);
    const storeKeyFile = join(dir, "store.key");
    writeStoreKey(storeKeyFile);
    // a new cluster's members serve once they have quorum: all started first, then each awaited
    await Promise.all(members.map((m) => m.ready()));
    return { members, store: { kind: "etcd", endpoints: members.map((m) => m.clientUrl), tlsDir, storeKeyFile, caDir }, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
