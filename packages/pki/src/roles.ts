// Who a certificate says its holder is: CN = node ID (or "admin"/"readonly"),
// OU = vipmesh-<role>, O = the cluster's ID — swarm's layout.

import { X509Certificate } from "node:crypto";

/** The name every manager certificate carries; clients check the role in it, not a host name. */
export const MANAGER_SERVER_NAME = "vipmesh-manager";

export const ROLES = ["manager", "worker", "admin", "readonly"] as const;
export type Role = (typeof ROLES)[number];

/** The roles a join token can make: the other two are issued by the manager to itself and its local admin. */
export const JOIN_ROLES = ["worker", "manager"] as const satisfies readonly Role[];
export type JoinRole = (typeof JOIN_ROLES)[number];

export interface CertIdentity {
  /** CN: the node ID for nodes; "admin" or "readonly" for API users. */
  id: string;
  role: Role;
  clusterId: string;
}

const OU_PREFIX = "vipmesh-";

export function subjectOf(identity: CertIdentity): string {
  return `CN=${identity.id}, OU=${OU_PREFIX}${identity.role}, O=${identity.clusterId}`;
}

/** Node's parsed subject ({CN, OU, O}), as tls's getPeerCertificate() gives it. */
export interface SubjectFields {
  CN?: string | string[];
  OU?: string | string[];
  O?: string | string[];
}

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? undefined : v);

/** The identity a certificate's subject carries; undefined when it is not one of ours. */
export function identityOfSubject(subject: SubjectFields | undefined): CertIdentity | undefined {
  const id = one(subject?.CN);
  const ou = one(subject?.OU);
  const clusterId = one(subject?.O);
  if (!id || !ou?.startsWith(OU_PREFIX) || !clusterId) return undefined;
  const role = ou.slice(OU_PREFIX.length) as Role;
  return ROLES.includes(role) ? { id, role, clusterId } : undefined;
}

/** The identity in a PEM certificate. */
export function identityOfPem(pem: string): CertIdentity | undefined {
  const cert = new X509Certificate(pem);
  const fields: Record<string, string | string[]> = {};
  for (const line of cert.subject.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) fields[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return identityOfSubject(fields);
}
