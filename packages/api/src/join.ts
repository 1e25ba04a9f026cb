// A node's identity: the certificate it got by joining with a token, kept in
// its state dir and renewed before it expires, without the token.
//
// Joining goes swarm's way. The CA is fetched over TLS without verification,
// and trusted only if its SHA-256 is the digest in the token: a manager in
// the middle cannot pass its own CA off, and the token's secret is sent only
// over TLS verified with that CA, together with a CSR for a key made here that
// never leaves the node.

import { caDigest, identityOfPem, isUsable, parseToken, readIdentity, renewalDelayMs, type TlsIdentity, writeIdentity } from "@vipmesh/pki";
import { X509Certificate } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { call, caClient } from "./clients.ts";
import { firstReachable } from "./status.ts";
import { timerAt, type Timer } from "./timers.ts";
import { IdentitySource } from "./tls.ts";

export class JoinError extends Error {
  override name = "JoinError";
}

/** Joins the cluster at `manager` with `token`: a new node ID and its certificate. */
export async function joinCluster(manager: string, token: string): Promise<{ nodeId: string; identity: TlsIdentity }> {
  let pinned: string;
  try {
    pinned = parseToken(token).caDigest;
  } catch (err) {
    throw new JoinError(`bad join token: ${(err as Error).message}`);
  }
  const anonymous = caClient(manager, "unverified");
  let caPem: string;
  try {
    caPem = (await call(anonymous, "getRootCa", {}, { deadline: Date.now() + 10_000 })).caPem;
  } finally {
    anonymous.close();
  }
  if (caDigest(Buffer.from(new X509Certificate(caPem).raw)) !== pinned) {
    throw new JoinError(`the manager at ${manager} has another CA than the join token names: a token of another cluster, or not the manager you meant`);
  }
  const { keyPem, csrPem } = await newKeyAndCsr();
  const client = caClient(manager, { ca: caPem });
  try {
    const res = await call(client, "join", { token, csrPem }, { deadline: Date.now() + 10_000 });
    return { nodeId: res.nodeId, identity: { caPem, certPem: res.certPem, keyPem } };
  } finally {
    client.close();
  }
}

/** A fresh key and CSR, from the signing half of @vipmesh/pki, loaded only now (see its header). */
const newKeyAndCsr = async () => (await import("@vipmesh/pki/signing")).newKeyAndCsr();

/** A new certificate for the same node and role, for a new key, asked for with the current one. */
export async function renewCertificate(manager: string, source: IdentitySource): Promise<TlsIdentity> {
  const { keyPem, csrPem } = await newKeyAndCsr();
  const client = caClient(manager, { identity: source });
  try {
    const res = await call(client, "renewCertificate", { csrPem }, { deadline: Date.now() + 10_000 });
    return { caPem: source.identity.caPem, certPem: res.certPem, keyPem };
  } finally {
    client.close();
  }
}

export interface NodeIdentityOptions {
  /** The manager, or the managers tried in turn (one that cannot be reached: the next). */
  manager: string | readonly string[];
  /** Where the identity is kept (`<stateDir>/tls`); undefined keeps it in memory only (simulated agents). */
  stateDir?: string;
  /** Needed only when the node has no usable certificate yet. */
  token?: string | (() => string);
  log?: (line: string) => void;
}

/** The identity a node agent uses: loaded, or joined for; renewed at 50–80% of its life while running. */
export class NodeIdentity {
  private timer: Timer | undefined;

  private constructor(
    readonly source: IdentitySource,
    readonly nodeId: string,
    private readonly options: NodeIdentityOptions,
  ) {}

  static async obtain(options: NodeIdentityOptions): Promise<NodeIdentity> {
    const dir = options.stateDir && join(options.stateDir, "tls");
    const kept = dir ? readIdentity(dir) : undefined;
    if (kept && isUsable(kept)) return new NodeIdentity(new IdentitySource(kept), nodeIdOf(kept), options);
    // read only now: a node that has joined needs no token (its file may be gone)
    const token = typeof options.token === "function" ? options.token() : options.token;
    if (!token) {
      throw new JoinError(
        kept
          ? "this node's certificate has expired or is not valid: join again with --token-file (vipmesh join-token worker)"
          : "this node has not joined a cluster: pass --token-file (print a token with `vipmesh join-token worker`)",
      );
    }
    const { nodeId, identity } = await firstReachable(managersOf(options), (m) => joinCluster(m, token));
    if (dir) writeIdentity(dir, identity);
    options.log?.(`joined the cluster as node ${nodeId}`);
    return new NodeIdentity(new IdentitySource(identity), nodeId, options);
  }

  /** Renews at a random point between 50% and 80% of the certificate's life; a failed renewal is retried in a minute. */
  startRenewal(): void {
    const schedule = (ms: number) => {
      this.timer = timerAt(Date.now() + ms, () => void this.renew().then(() => schedule(renewalDelayMs(this.source.identity.certPem)), () => schedule(60_000)));
    };
    schedule(renewalDelayMs(this.source.identity.certPem));
  }

  async renew(): Promise<void> {
    try {
      const identity = await firstReachable(managersOf(this.options), (m) => renewCertificate(m, this.source));
      if (this.options.stateDir) writeIdentity(join(this.options.stateDir, "tls"), identity);
      this.source.set(identity);
      this.options.log?.(`certificate renewed, valid until ${new X509Certificate(identity.certPem).validTo}`);
    } catch (err) {
      this.options.log?.(`certificate renewal failed (retrying in a minute): ${(err as Error).message}`);
      throw err;
    }
  }

  stop(): void {
    this.timer?.clear();
  }

  /** The node was removed: its certificate is refused for good. Stops renewing and deletes it, so that the next start joins anew. */
  forget(): void {
    this.stop();
    if (this.options.stateDir) rmSync(join(this.options.stateDir, "tls"), { recursive: true, force: true });
  }
}

const managersOf = (o: NodeIdentityOptions): readonly string[] => (typeof o.manager === "string" ? [o.manager] : o.manager);

function nodeIdOf(identity: TlsIdentity): string {
  const who = identityOfPem(identity.certPem);
  if (!who) throw new JoinError("the node's certificate carries no vipmesh identity");
  return who.id;
}
