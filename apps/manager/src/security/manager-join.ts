// One more manager for a cluster on etcd (`vipmesh manager --store etcd
// --join HOST:PORT --token …`): what it needs to share the store, asked of a
// running manager with the manager token (JoinManager in ca.proto) and kept
// in its data dir. As a node joins (@vipmesh/api's join.ts): the CA is
// fetched unverified and trusted only if its digest is the token's, and the
// token goes only over TLS verified with it, with a CSR for an etcd client
// key made here that never leaves this machine.

import { call, caClient } from "@vipmesh/api";
import { caDigest, parseToken, readIdentity, writeIdentity } from "@vipmesh/pki";
import { newKeyAndCsr } from "@vipmesh/pki/signing";
import { X509Certificate } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { readStoreKey, writeStoreKey } from "../store/secret-box.ts";

const CALL_TIMEOUT_MS = 10_000;

/** Where a joined manager keeps what it was given, under its data dir. */
export const managerJoinFiles = (dataDir: string) => ({
  /** ca.pem, cert.pem, key.pem (0600): its etcd client identity, CN vipmesh-manager (--etcd-tls-dir). */
  etcdTlsDir: join(dataDir, "etcd-client"),
  /** 64 hex characters, 0600 (--store-key). */
  storeKeyFile: join(dataDir, "store.key"),
});

export interface JoinedManager {
  etcdTlsDir: string;
  storeKeyFile: string;
  /** The etcd members' client URLs the joining manager was given (--etcd-endpoints). */
  etcdEndpoints: string[];
}

export class ManagerJoinError extends Error {
  override name = "ManagerJoinError";
}

/** Joins the cluster of the manager at `manager` (host:port) as a manager, writing what it was given under `dataDir`. */
export async function joinAsManager(manager: string, token: string, dataDir: string): Promise<JoinedManager> {
  let pinned: string;
  try {
    pinned = parseToken(token).caDigest;
  } catch (err) {
    throw new ManagerJoinError(`bad join token: ${(err as Error).message}`);
  }
  const anonymous = caClient(manager, "unverified");
  let caPem: string;
  try {
    caPem = (await call(anonymous, "getRootCa", {}, { deadline: Date.now() + CALL_TIMEOUT_MS })).caPem;
  } finally {
    anonymous.close();
  }
  if (caDigest(Buffer.from(new X509Certificate(caPem).raw)) !== pinned) {
    throw new ManagerJoinError(`the manager at ${manager} has another CA than the join token names: a token of another cluster, or not the manager you meant`);
  }
  const { keyPem, csrPem } = await newKeyAndCsr();
  const client = caClient(manager, { ca: caPem });
  const res = await call(client, "joinManager", { token, etcdCsrPem: csrPem }, { deadline: Date.now() + CALL_TIMEOUT_MS }).finally(() => client.close());
  // a data dir that joined before keeps its files; another cluster's is a mistake to stop at, not to overwrite
  const files = managerJoinFiles(dataDir);
  const keptKey = existsSync(files.storeKeyFile) ? readStoreKey(files.storeKeyFile) : undefined;
  const keptTls = readIdentity(files.etcdTlsDir);
  if ((keptKey && !keptKey.equals(res.storeKey)) || (keptTls && keptTls.caPem !== caPem)) {
    throw new ManagerJoinError(`${dataDir} holds the store key or etcd identity of another cluster than the one at ${manager}: give this manager a new --data-dir`);
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (!keptKey) writeStoreKey(files.storeKeyFile, res.storeKey);
  writeIdentity(files.etcdTlsDir, { caPem, certPem: res.etcdCertPem, keyPem });
  return { ...files, etcdEndpoints: res.etcdEndpoints };
}
