// etcd's certificates from the cluster CA (`vipmesh ca issue`, the lab): a
// member's for its client and peer ports, and a client's for the managers
// and the admin.
//
// Why a client's CN matters: etcd started with --client-cert-auth trusts
// every certificate the CA signed, every node's included. With etcd's auth
// on, it takes the CN of a client certificate as the user: only the users
// made for it (`vipmesh-manager`, and `root` for the admin) may read or
// write; a node's certificate (CN = its node ID) is denied. Subjects here
// carry OU=etcd, so the manager's API, which wants OU=vipmesh-<role>, trusts
// none of these in turn.

import { isIP } from "node:net";
import { CaError, ClusterCa, type TlsCertSpec } from "./ca.ts";
import { type TlsIdentity, writeIdentity } from "./identity.ts";
import { x509 } from "./x509.ts";

export const ETCD_USAGES = ["server", "peer", "client"] as const;
/**
 * server: a member's client port (serverAuth) — not with --client-cert-auth,
 * where etcd's gRPC gateway dials its own client port with it; peer: its
 * client and peer ports, which dial as well as serve (both); client: a
 * manager or the admin (clientAuth).
 */
export type EtcdUsage = (typeof ETCD_USAGES)[number];

export interface EtcdCertRequest {
  /** What it is for: a member's name (m1), or a client's user. */
  name: string;
  usage: EtcdUsage;
  /** The addresses (server, peer) it is valid for: clients check the one they dialled. */
  ips?: string[];
  dns?: string[];
  /** The subject's CN, the etcd user of a client certificate; default the name. */
  cn?: string;
}

/** One year: etcd's certificates are not renewed by vipmesh; issue them again before then and restart the member. */
export const ETCD_CERT_VALIDITY_MS = 365 * 24 * 3600_000;

const EKU = {
  server: [x509.ExtendedKeyUsage.serverAuth],
  peer: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
  client: [x509.ExtendedKeyUsage.clientAuth],
} satisfies Record<EtcdUsage, x509.ExtendedKeyUsage[]>;

// an etcd user or member name, and nothing that could change a subject's meaning (commas, '=')
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const HOST = /^(?=.{1,253}$)[A-Za-z0-9*]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

/** The etcd user of the managers' client certificates. */
export const ETCD_MANAGER_USER = "vipmesh-manager";
/** The etcd user of the admin's client certificate (etcd's own superuser). */
export const ETCD_ADMIN_USER = "root";

/** What a certificate `req` asks for says, for `ca`. A bad request is a CaError. */
export function etcdSpec(ca: ClusterCa, req: EtcdCertRequest): TlsCertSpec {
  const cn = req.cn ?? req.name;
  const ips = req.ips ?? [];
  const dns = req.dns ?? [];
  if (!ETCD_USAGES.includes(req.usage)) throw new CaError(`the usage is server, peer or client, not "${req.usage}"`);
  for (const [what, value] of [["name", req.name], ["CN", cn]] as const) {
    if (!NAME.test(value)) throw new CaError(`the ${what} "${value}" may hold letters, digits, '.', '_' and '-' only`);
  }
  for (const ip of ips) if (!isIP(ip)) throw new CaError(`"${ip}" is not an IP address`);
  for (const host of dns) if (!HOST.test(host)) throw new CaError(`"${host}" is not a DNS name`);
  if (req.usage !== "client" && ips.length + dns.length === 0) {
    throw new CaError(`a ${req.usage} certificate needs the addresses it serves on (--ip, --dns): clients check the one they dialled`);
  }
  return {
    subject: `CN=${cn}, OU=etcd, O=${ca.clusterId}`,
    usages: EKU[req.usage],
    names: [...ips.map((value) => ({ type: "ip" as const, value })), ...dns.map((value) => ({ type: "dns" as const, value }))],
  };
}

/** A key and the certificate `req` asks for, signed by `ca`. */
export async function issueEtcd(ca: ClusterCa, req: EtcdCertRequest, validityMs = ETCD_CERT_VALIDITY_MS): Promise<TlsIdentity> {
  return ca.issueTls(etcdSpec(ca, req), validityMs);
}

/** Signs `req` with the CA in `caDir` (`ca init`'s) and writes outDir/{ca.pem,cert.pem,key.pem} (key 0600). */
export async function issueEtcdCertificate(caDir: string, req: EtcdCertRequest, outDir: string, validityMs = ETCD_CERT_VALIDITY_MS): Promise<TlsIdentity> {
  const id = await issueEtcd(await ClusterCa.load(caDir), req, validityMs);
  writeIdentity(outDir, id);
  return id;
}
