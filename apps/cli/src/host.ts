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
  address: string;
  credentials: ClientCredentials;
}

/**
 * The manager's address (see resolveManagerAddress) and the identity to
 * present: --tls-dir, else VIPMESH_TLS_DIR, else — for a running lab's
 * manager — the lab's admin identity (or its read-only one, for watchers).
 */
export function resolveManager(sources: HostSources, use: "admin" | "readonly" = "admin"): ManagerTarget {
  const address = resolveManagerAddress(sources);
  if (sources.insecure) return { address, credentials: "insecure" };
  const lab = [...(sources.labs?.values() ?? [])].find((l) => l.socket === address || `unix:${l.socket}` === address);
  const dir = sources.tlsDir || sources.env.VIPMESH_TLS_DIR || (lab && (use === "admin" ? lab.tlsDir : lab.readonlyTlsDir));
  if (!dir) {
    throw new UsageError(
      `no TLS identity for the manager at ${address}: pass --tls-dir DIR or set VIPMESH_TLS_DIR (the manager writes its admin's in <data-dir>/admin)`,
    );
  }
  try {
    return { address, credentials: credentialsFromDir(resolve(sources.cwd, dir)) };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/**
 * The manager's address: --host, else VIPMESH_HOST, else the socket of the lab
 * running on this machine. host:port stays as is; a socket path becomes
 * absolute so the client does not depend on a later cwd.
 */
export function resolveManagerAddress(sources: HostSources): string {
  const given = sources.flag || sources.env.VIPMESH_HOST;
  if (given) return normalizeAddress(given, sources.cwd);
  const labs = sources.labs ?? new Map<string, LabEndpoint>();
  if (labs.size === 1) return [...labs.values()][0]!.socket;
  if (labs.size > 1) {
    throw new UsageError(
      `several labs run here (${[...labs.keys()].join(", ")}): pass --host /run/vipmesh/NAME/manager.sock or set VIPMESH_HOST`,
    );
  }
  throw new UsageError(
    "no manager address: pass --host ADDR or set VIPMESH_HOST (ADDR is host:port or a unix socket path), or start a lab",
  );
}

export function normalizeAddress(address: string, cwd: string): string {
  if (address.startsWith("unix:")) return address;
  const isSocketPath = address.includes("/") || address.endsWith(".sock");
  if (isSocketPath) return isAbsolute(address) ? address : resolve(cwd, address);
  return address;
}
