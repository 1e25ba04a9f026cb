// What the manager does with the cluster CA: join tokens (one secret per
// role, rotatable), certificates for joining nodes and renewals, the
// revocation of removed nodes, and the identities it issues to itself and
// to its local admin and read-only users.

import { IdentitySource, timerAt, type Timer } from "@vipmesh/api";
import { exhausted, invalid, nodeRemoved } from "@vipmesh/core";
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
import { ClusterCa, CsrError } from "@vipmesh/pki/signing";
import { join } from "node:path";
import { newId } from "../ids.ts";
import { RemovedNodes } from "../store/removed-nodes.ts";
import type { Settings } from "../store/sqlite.ts";
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

/** Where the manager keeps its identities under its data dir. */
export const tlsDirs = (dataDir: string) => ({
  ca: join(dataDir, "ca"),
  manager: join(dataDir, "manager"),
  admin: join(dataDir, "admin"),
  readonly: join(dataDir, "readonly"),
});

export class CertificateAuthority {
  private readonly removed: RemovedNodes;
  private renewalTimer: Timer | undefined;
  private readonly joins: RateLimiter;

  private constructor(
    readonly ca: ClusterCa,
    private readonly settings: Settings,
    private readonly validityMs: number,
    joinRate: JoinRate,
  ) {
    this.removed = new RemovedNodes(settings);
    this.joins = new RateLimiter(joinRate.count, joinRate.windowMs);
  }

  static async open(dataDir: string, settings: Settings, validityMs = DEFAULT_CERT_VALIDITY_MS, joinRate = DEFAULT_JOIN_RATE): Promise<CertificateAuthority> {
    return new CertificateAuthority(await ClusterCa.loadOrCreate(tlsDirs(dataDir).ca), settings, validityMs, joinRate);
  }

  // ---- join tokens ---------------------------------------------------------

  joinToken(role: string, rotate: boolean): string {
    if (!JOIN_ROLES.includes(role as JoinRole)) throw invalid(`a join token is for "worker" or "manager", not "${role}"`);
    if (rotate) this.settings.set(tokenSetting(role as JoinRole), newSecret());
    return formatToken({ caDigest: this.ca.digest, secret: this.secret(role as JoinRole) });
  }

  private secret(role: JoinRole): string {
    let s = this.settings.get(tokenSetting(role));
    if (!s) {
      s = newSecret();
      this.settings.set(tokenSetting(role), s);
    }
    return s;
  }

  /**
   * A token and a CSR → a new node ID and its certificate. `source`: the
   * caller's address, "" on the unix socket. A bad token or CSR is
   * INVALID_ARGUMENT, too many joins RESOURCE_EXHAUSTED; neither issues anything.
   */
  async join(token: string, csrPem: string, source: string): Promise<{ nodeId: string; role: JoinRole; certPem: string }> {
    let parsed: JoinToken;
    try {
      parsed = parseToken(token);
    } catch (err) {
      if (err instanceof TokenFormatError) throw invalid(`bad join token: ${err.message}`);
      throw err;
    }
    if (parsed.caDigest !== this.ca.digest) throw invalid("the join token is for another cluster (its CA digest is not this cluster's)");
    const role = JOIN_ROLES.find((r) => sameSecret(parsed.secret, this.secret(r)));
    if (!role) throw invalid("the join token is not valid: it was rotated, or mistyped; ask for the current one with `vipmesh join-token worker`");
    // counted only for a valid token: made-up tokens cannot fill the limiter's keys
    const key = `${role} ${source}`;
    if (!this.joins.take(key)) {
      const { count, windowMs } = this.joins;
      throw exhausted(
        `too many joins with the ${role} token from ${source || "the local socket"} (at most ${count} in ${windowMs / 1000} s, the manager's --join-rate); ` +
          `try again in ${Math.ceil(this.joins.retryInMs(key) / 1000)} s`,
      );
    }
    const nodeId = newId();
    return { nodeId, role, certPem: await this.sign(csrPem, { id: nodeId, role }) };
  }

  /** The caller's new certificate: same ID and role, the CSR's key. */
  renew(caller: CertIdentity, csrPem: string): Promise<string> {
    return this.sign(csrPem, { id: caller.id, role: caller.role });
  }

  private async sign(csrPem: string, who: { id: string; role: Role }): Promise<string> {
    try {
      return await this.ca.signCsr(csrPem, who, this.validityMs);
    } catch (err) {
      if (err instanceof CsrError) throw invalid(err.message);
      throw err;
    }
  }

  // ---- revocation ----------------------------------------------------------

  /** PERMISSION_DENIED for a removed node's certificate (Cluster.removeNode tombstones it). */
  checkNotRevoked(caller: CertIdentity): void {
    if ((caller.role === "worker" || caller.role === "manager") && this.removed.has(caller.id)) throw nodeRemoved(caller.id);
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

function pastHalfLife(certPem: string): boolean {
  const { notBefore, notAfter } = validityOf(certPem);
  return Date.now() > notBefore + (notAfter - notBefore) / 2;
}
