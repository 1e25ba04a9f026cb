// Finding the manager a client command talks to.

import { isAbsolute, resolve } from "node:path";
import { UsageError } from "./errors.ts";

export interface HostSources {
  /** --host */
  flag?: string | undefined;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  /** Sockets of the labs running on this machine, by lab name. */
  labs?: ReadonlyMap<string, string>;
}

/**
 * The manager's address: --host, else VIPMESH_HOST, else the socket of the lab
 * running on this machine. host:port stays as is; a socket path becomes
 * absolute so the client does not depend on a later cwd.
 */
export function resolveManagerAddress(sources: HostSources): string {
  const given = sources.flag || sources.env.VIPMESH_HOST;
  if (given) return normalizeAddress(given, sources.cwd);
  const labs = sources.labs ?? new Map<string, string>();
  if (labs.size === 1) return [...labs.values()][0]!;
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
