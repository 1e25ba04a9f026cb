// What the manager does with the cluster CA: join tokens (one secret per
// role, rotatable), certificates for joining nodes and renewals, the
// revocation of removed nodes, and the identities it issues to itself and
// to its local admin and read-only users. The CA itself is in the data dir
// (one manager on SQLite) or in the store (managers on etcd: every manager
// signs with the same CA, whose key never touches their disks).

import { IdentitySource, timerAt, type Timer } from "@vipmesh/api";
import { exhausted, invalid, nodeRemoved, permissionDenied, precondition } from "@vipmesh/core";
import {
  type CertIdentity,
  formatToken,
  identityOfPem,
  isUsable,
  JOIN_ROLES,
  type JoinRole,
  type JoinToken,
  newSecret,
  parseToken,
  readIdentity,
  renewalDelayMs,
  type Role,
  sameSecret,
  TokenFormatError,
  type TlsIdentity,
  validityOf,
  writeIdentity,
} from "@vipmesh/pki";
import {
  CaError,
  type CaMaterial,
  ClusterCa,
  CsrError,
  ETCD_CERT_VALIDITY_MS,
  ETCD_MANAGER_USER,
  etcdSpec,
  readCaFiles,
} from "@vipmesh/pki/signing";
import { join } from "node:path";
import { newId } from "../ids.ts";
import type { ClusterStore } from "../store/cluster-store.ts";
import { RateLimiter } from "./rate-limit.ts";

export const DEFAULT_CERT_VALIDITY_MS = 90 * 24 * 3600_000;

/** At most `count` joins in `windowMs` with one token (one per role) from one source address. */
export interface JoinRate {
  count: number;
  windowMs: number;
}

/**
 * 10 a minute: an operator adding nodes by hand, or a script adding a rack
 * from one host, stays under it (and waits a minute per ten past it); a leaked
 * token flooding from one address makes 10 nodes a minute, not 40 a second.
 */
export const DEFAULT_JOIN_RATE: JoinRate = { count: 10, windowMs: 60_000 };

const tokenSetting = (role: JoinRole) => `join-secret-${role}`;

/** The store's settings that hold the CA with --store etcd (the etcd backend seals them with the store key). */
export const CA_SETTINGS = { cert: "ca-cert", key: "ca-key" } as const;

/** Where the cluster CA is. */
export type CaSource =
  /** <data-dir>/ca (ca.pem, ca.key 0600), made there on the first start: one manager, on SQLite. */
  | { in: "data-dir" }
  /**
   * The store's settings CA_SETTINGS (managers on etcd). On the cluster's
   * first start the first manager imports the CA `vipmesh ca init` made in
   * `importFrom` (--ca-dir), which also made etcd's certificates; later
   * managers find it there.
   */
  | { in: "store"; importFrom?: string };

/** What the CA needs of the store: its settings (read from memory), and transactions to write them. */
export type CaStore = Pick<ClusterStore, "settings" | "update" | "removedNodes">;

/** What JoinManager gives a new manager besides its etcd certificate: this manager's --store-key and --etcd-endpoints. */
export interface ManagerJoinSecrets {
  storeKey: Buffer;
  etcdEndpoints: readonly string[];
}

export interface CaOptions {
  source?: CaSource;
  /** Managers on etcd: what new managers are given (JoinManager); without it, JoinManager is refused. */
  managerJoin?: ManagerJoinSecrets;
  /** How long node certificates last. */
  validityMs?: number;
  joinRate?: JoinRate;
}

/** Where the manager keeps its identities under its data dir. */
export const tlsDirs = (dataDir: string) => ({
  ca: join(dataDir, "ca"),
  manager: join(dataDir, "manager"),
  admin: join(dataDir, "admin"),
  readonly: join(dataDir, "readonly"),
});

export class CertificateAuthority {
  private renewalTimer: Timer | undefined;
  private readonly joins: RateLimiter;

  private constructor(
    readonly ca: ClusterCa,
    private readonly store: CaStore,
    private readonly validityMs: number,
    joinRate: JoinRate,
    private readonly managerJoin: ManagerJoinSecrets | undefined,
  ) {
    this.joins = new RateLimiter(joinRate.count, joinRate.windowMs);
  }

  /** The CA where `source` says, with a join token secret for each role (made on the cluster's first start). */
  static async open(dataDir: string, store: CaStore, options: CaOptions = {}): Promise<CertificateAuthority> {
    const source = options.source ?? { in: "data-dir" };
    const ca = source.in === "data-dir" ? await ClusterCa.loadOrCreate(tlsDirs(dataDir).ca) : await caInStore(store, source.importFrom);
    // in one transaction that sees another manager's secrets if it made them first: a token once shown stays valid
    await store.update((tx) => {
      for (const role of JOIN_ROLES) if (tx.setting(tokenSetting(role)) === undefined) tx.setSetting(tokenSetting(role), newSecret());
    });
    return new CertificateAuthority(ca, store, options.validityMs ?? DEFAULT_CERT_VALIDITY_MS, options.joinRate ?? DEFAULT_JOIN_RATE, options.managerJoin);
  }

  // ---- join tokens ---------------------------------------------------------

  async joinToken(role: string, rotate: boolean): Promise<string> {
    if (!JOIN_ROLES.includes(role as JoinRole)) throw invalid(`a join token is for "worker" or "manager", not "${role}"`);
    if (rotate) await this.store.update((tx) => tx.setSetting(tokenSetting(role as JoinRole), newSecret()));
    return formatToken({ caDigest: this.ca.digest, secret: this.secret(role as JoinRole) });
  }

  /** The role's current secret: made by open(), rotated by any manager. */
  private secret(role: JoinRole): string {
    return this.store.settings.get(tokenSetting(role))!;
  }

  /**
   * A token and a CSR → a new node ID and its certificate. `source`: the
   * caller's address, "" on the unix socket. A bad token or CSR is
   * INVALID_ARGUMENT, too many joins RESOURCE_EXHAUSTED; neither issues anything.
   */
  async join(token: string, csrPem: string, source: string): Promise<{ nodeId: string; role: JoinRole; certPem: string }> {
    const role = this.roleOf(token);
    this.admit(role, source);
    const nodeId = newId();
    return { nodeId, role, certPem: await this.sign(() => this.ca.signCsr(csrPem, { id: nodeId, role }, this.validityMs)) };
  }

  /**
   * A manager token and a CSR for a new manager's etcd client key → what it
   * needs to share the store (JoinManager in ca.proto). Refused as join() is,
   * and besides: a worker token (PERMISSION_DENIED), and by a manager that
   * does not keep the cluster in etcd (FAILED_PRECONDITION).
   */
  async joinManager(token: string, etcdCsrPem: string, source: string): Promise<{ etcdCertPem: string; storeKey: Buffer; etcdEndpoints: string[] }> {
    if (!this.managerJoin) throw precondition("this manager keeps the cluster in SQLite, which one manager alone uses: more managers join managers on etcd (--store etcd)");
    const role = this.roleOf(token);
    if (role !== "manager") throw permissionDenied("a worker token joins a node, not a manager: ask for the manager token with `vipmesh join-token manager`");
    this.admit(role, source);
    // CN = the etcd user the managers' role is granted to (etcd-certs.ts): a node's certificate has no such CN
    const spec = etcdSpec(this.ca, { name: "manager", usage: "client", cn: ETCD_MANAGER_USER });
    const etcdCertPem = await this.sign(() => this.ca.signCsrAs(etcdCsrPem, spec, ETCD_CERT_VALIDITY_MS));
    return { etcdCertPem, storeKey: this.managerJoin.storeKey, etcdEndpoints: [...this.managerJoin.etcdEndpoints] };
  }

  /** The role a token joins as; INVALID_ARGUMENT for a malformed, foreign, rotated or mistyped one. */
  private roleOf(token: string): JoinRole {
    let parsed: JoinToken;
    try {
      parsed = parseToken(token);
    } catch (err) {
      if (err instanceof TokenFormatError) throw invalid(`bad join token: ${err.message}`);
      throw err;
    }
    if (parsed.caDigest !== this.ca.digest) throw invalid("the join token is for another cluster (its CA digest is not this cluster's)");
    const role = JOIN_ROLES.find((r) => sameSecret(parsed.secret, this.secret(r)));
    if (!role) throw invalid("the join token is not valid: it was rotated, or mistyped; ask for the current one with `vipmesh join-token worker` (or `manager`)");
    return role;
  }

  /** Counts a join with a valid token (made-up tokens cannot fill the limiter's keys); RESOURCE_EXHAUSTED past the rate. */
  private admit(role: JoinRole, source: string): void {
    const key = `${role} ${source}`;
    if (!this.joins.take(key)) {
      const { count, windowMs } = this.joins;
      throw exhausted(
        `too many joins with the ${role} token from ${source || "the local socket"} (at most ${count} in ${windowMs / 1000} s, the manager's --join-rate); ` +
          `try again in ${Math.ceil(this.joins.retryInMs(key) / 1000)} s`,
      );
    }
  }

  /** The caller's new certificate: same ID and role, the CSR's key. */
  renew(caller: CertIdentity, csrPem: string): Promise<string> {
    return this.sign(() => this.ca.signCsr(csrPem, { id: caller.id, role: caller.role }, this.validityMs));
  }

  /** A signature of a caller's CSR: a bad CSR is INVALID_ARGUMENT. */
  private async sign(fn: () => Promise<string>): Promise<string> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof CsrError) throw invalid(err.message);
      throw err;
    }
  }

  // ---- revocation ----------------------------------------------------------

  /** PERMISSION_DENIED for a removed node's certificate (Cluster.removeNode tombstones it). */
  checkNotRevoked(caller: CertIdentity): void {
    if ((caller.role === "worker" || caller.role === "manager") && this.store.removedNodes.has(caller.id)) throw nodeRemoved(caller.id);
  }

  // ---- the manager's own identities ----------------------------------------

  /**
   * The manager's server identity, and the admin and read-only client
   * identities under the data dir: each (re)issued when missing, not of this
   * CA, or past half its life. The manager's own is renewed while it runs.
   */
  async localIdentities(dataDir: string): Promise<IdentitySource> {
    const dirs = tlsDirs(dataDir);
    const manager = await this.fresh(dirs.manager, { id: `manager-${this.ca.clusterId.slice(0, 12)}`, role: "manager" });
    await this.fresh(dirs.admin, { id: "admin", role: "admin" });
    await this.fresh(dirs.readonly, { id: "readonly", role: "readonly" });
    const source = new IdentitySource(manager);
    const schedule = () => {
      this.renewalTimer = timerAt(Date.now() + renewalDelayMs(source.identity.certPem), async () => {
        source.set(await this.fresh(dirs.manager, { id: identityOfPem(source.identity.certPem)!.id, role: "manager" }, true));
        schedule();
      });
    };
    schedule();
    return source;
  }

  stop(): void {
    this.renewalTimer?.clear();
  }

  private async fresh(dir: string, who: { id: string; role: Role }, force = false): Promise<TlsIdentity> {
    const kept = readIdentity(dir);
    if (!force && kept && kept.caPem === this.ca.certPem && isUsable(kept) && !pastHalfLife(kept.certPem)) return kept;
    const issued = await this.ca.issue(who, this.validityMs);
    writeIdentity(dir, issued);
    return issued;
  }
}

/**
 * The CA in the store; on the cluster's first start, imported from
 * `importFrom` in one transaction (two managers starting at once import it
 * once). A CA in `importFrom` that is not the store's is refused: it made
 * certificates this cluster does not trust.
 */
async function caInStore(store: CaStore, importFrom: string | undefined): Promise<ClusterCa> {
  let offered: CaMaterial | undefined;
  if (importFrom !== undefined) {
    offered = readCaFiles(importFrom);
    if (!offered) throw new CaError(`${importFrom} (--ca-dir) holds no cluster CA (ca.pem and ca.key): make one with \`vipmesh ca init --dir ${importFrom}\``);
    await ClusterCa.fromPem(offered, importFrom); // whole and ours, before it goes into the store
    const { certPem, keyPem } = offered;
    await store.update((tx) => {
      if (tx.setting(CA_SETTINGS.cert) !== undefined) return;
      tx.setSetting(CA_SETTINGS.cert, certPem);
      tx.setSetting(CA_SETTINGS.key, keyPem);
    });
  }
  const certPem = store.settings.get(CA_SETTINGS.cert);
  const keyPem = store.settings.get(CA_SETTINGS.key);
  if (certPem === undefined || keyPem === undefined) {
    throw new CaError("the store holds no cluster CA yet: start the cluster's first manager with --ca-dir DIR, the directory `vipmesh ca init --dir DIR` made");
  }
  const ca = await ClusterCa.fromPem({ certPem, keyPem }, "the store");
  if (offered && offered.certPem !== certPem) {
    throw new CaError(`the CA in ${importFrom} (--ca-dir) is not this cluster's: the store holds cluster ${ca.clusterId}'s; give the directory the cluster was made with, or no --ca-dir`);
  }
  return ca;
}

function pastHalfLife(certPem: string): boolean {
  const { notBefore, notAfter } = validityOf(certPem);
  return Date.now() > notBefore + (notAfter - notBefore) / 2;
}
