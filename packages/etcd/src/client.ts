// A client of vipmesh's etcd cluster (the managers' store, the HA keys): the
// etcd3 npm client with deadlines on every call and quick watch reconnects.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Etcd3, type IOptions } from "etcd3";

/** A client identity: the cluster CA, a certificate it signed (clientAuth) and its key, as PEM. */
export interface EtcdClientTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

export interface EtcdConnectOptions {
  /** Client URLs of the members: https://A:2379 (http:// only without TLS, in tests). */
  endpoints: readonly string[];
  tls: EtcdClientTls | undefined;
  /** Deadline of each unary call that gives none itself; default 5 s. */
  callTimeoutMs?: number;
}

const DIAL_TIMEOUT_MS = 3_000;
const CALL_TIMEOUT_MS = 5_000;
const WATCH_RETRY_FIRST_MS = 250;
const WATCH_RETRY_MAX_MS = 2_000;

type Backoff = NonNullable<NonNullable<IOptions["faultHandling"]>["watchBackoff"]>;

/** Watch reconnects from 250 ms doubling to 2 s: etcd3's default grows to 30 s, a manager's cache would stay that stale after etcd came back. */
const watchBackoff = (ms: number): Backoff => ({ duration: ms, next: () => watchBackoff(Math.min(ms * 2, WATCH_RETRY_MAX_MS)) });

/**
 * A client of the members at `endpoints`. Calls fail at their deadline
 * rather than wait for etcd (without quorum etcd answers nothing); etcd3
 * retries a call on another member when one is unreachable.
 */
export function connectEtcd(o: EtcdConnectOptions): Etcd3 {
  if (o.endpoints.length === 0) throw new Error("no etcd endpoints given");
  const callTimeoutMs = o.callTimeoutMs ?? CALL_TIMEOUT_MS;
  return new Etcd3({
    hosts: [...o.endpoints],
    ...(o.tls ? { credentials: { rootCertificate: o.tls.ca, certChain: o.tls.cert, privateKey: o.tls.key } } : {}),
    dialTimeout: DIAL_TIMEOUT_MS,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    // a watch catching up sends up to 1,000 revisions in one message: far over gRPC's default 4 MiB
    grpcOptions: { "grpc.max_receive_message_length": 256 * 1024 * 1024 },
    faultHandling: { watchBackoff: watchBackoff(WATCH_RETRY_FIRST_MS) },
  });
}

/** The identity in a directory as `vipmesh ca issue` writes it: ca.pem, cert.pem, key.pem. */
export function readEtcdTls(dir: string): EtcdClientTls {
  const read = (name: string) => {
    try {
      return readFileSync(join(dir, name));
    } catch (err) {
      throw new Error(`cannot read the etcd client identity's ${name} in ${dir}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  return { ca: read("ca.pem"), cert: read("cert.pem"), key: read("key.pem") };
}
