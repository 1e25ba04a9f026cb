// Finding the manager a client command talks to, and the identity to show it.

import { type ClientCredentials, credentialsFromDir } from "@vipmesh/api";
import type { LabEndpoint } from "@vipmesh/lab";
import { isAbsolute, resolve } from "node:path";
import { UsageError } from "./errors.ts";

export interface HostSources {
  /** --host */
  flag?: string | undefined;
  /** --tls-dir */
  tlsDir?: string | undefined;
  /** --insecure: plaintext, to a manager started with --insecure */
  insecure?: boolean | undefined;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  /** The labs running on this machine, by lab name. */
  labs?: ReadonlyMap<string, LabEndpoint>;
}

export interface ManagerTarget {
  /** The first of `addresses`: the one named in messages before any other was tried. */
  address: string;
  /** The managers to try, in order: one that cannot be reached, the next (manager-connection.ts). */
  addresses: string[];
  credentials: ClientCredentials;
}

/** A lab's managers' sockets (every one that listens), else its one socket. */
const labSockets = (l: LabEndpoint): readonly string[] => (l.managerSockets.length > 0 ? l.managerSockets : [l.socket]);

/**
 * The managers' addresses (see resolveManagerAddresses) and the identity to
 * present: --tls-dir, else VIPMESH_TLS_DIR, else — for a running lab's
 * managers — the lab's admin identity (or its read-only one, for watchers).
 */
export function resolveManager(sources: HostSources, use: "admin" | "readonly" = "admin"): ManagerTarget {
  const addresses = resolveManagerAddresses(sources);
  const address = addresses[0]!;
  if (sources.insecure) return { address, addresses, credentials: "insecure" };
  const lab = [...(sources.labs?.values() ?? [])].find((l) => labSockets(l).some((s) => s === address || `unix:${s}` === address));
  const dir = sources.tlsDir || sources.env.VIPMESH_TLS_DIR || (lab && (use === "admin" ? lab.tlsDir : lab.readonlyTlsDir));
  if (!dir) {
    throw new UsageError(
      `no TLS identity for the manager at ${address}: pass --tls-dir DIR or set VIPMESH_TLS_DIR (the manager writes its admin's in <data-dir>/admin)`,
    );
  }
  try {
    return { address, addresses, credentials: credentialsFromDir(resolve(sources.cwd, dir)) };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/**
 * The managers' addresses, at least one: --host, else VIPMESH_HOST (each a
 * comma-separated list), else the sockets of the lab running on this
 * machine. host:port stays as is; a socket path becomes absolute so the
 * client does not depend on a later cwd.
 */
export function resolveManagerAddresses(sources: HostSources): string[] {
  const [given, source] = sources.flag ? [sources.flag, "--host"] : [sources.env.VIPMESH_HOST, "VIPMESH_HOST"];
  if (given) {
    const addresses = addressList(given, sources.cwd);
    if (addresses.length === 0) throw new UsageError(`${source} ${given}: give a manager's address, host:port or a unix socket path`);
    return addresses;
  }
  const labs = sources.labs ?? new Map<string, LabEndpoint>();
  if (labs.size === 1) return [...labSockets([...labs.values()][0]!)];
  if (labs.size > 1) {
    throw new UsageError(
      `several labs run here (${[...labs.keys()].join(", ")}): pass --host /run/vipmesh/NAME/manager.sock or set VIPMESH_HOST`,
    );
  }
  throw new UsageError(
    "no manager address: pass --host ADDR or set VIPMESH_HOST (ADDR is host:port or a unix socket path), or start a lab",
  );
}

/** A comma-separated list of addresses, each normalized (normalizeAddress), empty items and repeats left out. */
export function addressList(text: string, cwd: string): string[] {
  return [...new Set(text.split(",").map((a) => a.trim()).filter((a) => a !== "").map((a) => normalizeAddress(a, cwd)))];
}

export function normalizeAddress(address: string, cwd: string): string {
  if (address.startsWith("unix:")) return address;
  const isSocketPath = address.includes("/") || address.endsWith(".sock");
  if (isSocketPath) return isAbsolute(address) ? address : resolve(cwd, address);
  return address;
}
