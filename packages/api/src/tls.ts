// TLS credentials for both ends. Every connection is TLS with certificates
// from the cluster's CA; identities come from an IdentitySource, which a
// renewal can change under a running client or server (new connections use
// the new certificate, open ones go on). A client checks that the server's
// certificate is a manager's of its cluster, not a host name: managers are
// reached by address, unix socket or name alike.

import * as grpc from "@grpc/grpc-js";
import { identityOfSubject, readIdentity, type TlsIdentity } from "@vipmesh/pki";
import type { PeerCertificate } from "node:tls";

type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

/** A TLS identity that can be replaced; grpc-js's certificate provider for both the CA and the identity. */
export class IdentitySource implements grpc.experimental.CertificateProvider {
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();

  constructor(private current: TlsIdentity) {}

  get identity(): TlsIdentity {
    return this.current;
  }

  set(identity: TlsIdentity): void {
    this.current = identity;
    for (const l of this.caListeners) l(this.caUpdate());
    for (const l of this.identityListeners) l(this.identityUpdate());
  }

  private caUpdate = () => ({ caCertificate: Buffer.from(this.current.caPem) });
  private identityUpdate = () => ({ certificate: Buffer.from(this.current.certPem), privateKey: Buffer.from(this.current.keyPem) });

  // A new listener hears the current identity on the next tick, as from grpc-js's
  // file watcher: grpc-js registers its own watcher only after adding the listener.
  addCaCertificateListener(l: CaListener): void {
    this.caListeners.add(l);
    process.nextTick(() => this.caListeners.has(l) && l(this.caUpdate()));
  }
  removeCaCertificateListener(l: CaListener): void {
    this.caListeners.delete(l);
  }
  addIdentityCertificateListener(l: IdentityListener): void {
    this.identityListeners.add(l);
    process.nextTick(() => this.identityListeners.has(l) && l(this.identityUpdate()));
  }
  removeIdentityCertificateListener(l: IdentityListener): void {
    this.identityListeners.delete(l);
  }
}

/**
 * How a client connects: with its identity (the normal case); with only the
 * CA (a node joining, which has no certificate yet); unverified (only to
 * fetch the CA that a join token's digest then checks); or in plaintext, to a
 * manager started with --insecure.
 */
export type ClientCredentials =
  | { identity: IdentitySource }
  | { ca: string }
  | "unverified"
  | "insecure";

/** The credentials in a TLS directory (ca.pem, cert.pem, key.pem), e.g. the manager's `<data-dir>/admin`. */
export function credentialsFromDir(dir: string): ClientCredentials {
  const identity = readIdentity(dir);
  if (!identity) throw new Error(`no TLS identity in ${dir} (it needs ca.pem, cert.pem and key.pem)`);
  return { identity: new IdentitySource(identity) };
}

/** The server must hold a manager certificate (the chain to the CA is checked by TLS itself). */
function checkManager(_host: string, cert: PeerCertificate): Error | undefined {
  return identityOfSubject(cert.subject)?.role === "manager"
    ? undefined
    : new Error("the server's certificate is not a vipmesh manager's");
}

export function channelCredentials(c: ClientCredentials): grpc.ChannelCredentials {
  if (c === "insecure") return grpc.credentials.createInsecure();
  if (c === "unverified") return grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false, checkServerIdentity: () => undefined });
  if ("ca" in c) return grpc.credentials.createSsl(Buffer.from(c.ca), null, null, { checkServerIdentity: checkManager });
  return grpc.experimental.createCertificateProviderChannelCredentials(c.identity, c.identity, { checkServerIdentity: checkManager });
}

/**
 * The manager's side: its certificate from `source`; a client certificate is
 * asked for but not required at the handshake (a joining node has none), so
 * that each call can be authorised by its method (see the manager's authz).
 */
export function serverCredentials(source: IdentitySource | "insecure"): grpc.ServerCredentials {
  if (source === "insecure") return grpc.ServerCredentials.createInsecure();
  return grpc.experimental.createCertificateProviderServerCredentials(source, source, false);
}
