// Finding the manager a client command talks to.

import { isAbsolute, resolve } from "node:path";
import { UsageError } from "./errors.ts";

export interface HostSources {
  /** --host */
  flag?: string | undefined;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
}

/**
 * The manager's address: --host, else VIPMESH_HOST. host:port stays as is; a
 * socket path becomes absolute so the client does not depend on a later cwd.
 */
export function resolveManagerAddress(sources: HostSources): string {
  const given = sources.flag || sources.env.VIPMESH_HOST;
  if (!given) {
    throw new UsageError(
      "no manager address: pass --host ADDR or set VIPMESH_HOST (ADDR is host:port or a unix socket path)",
    );
  }
  return normalizeAddress(given, sources.cwd);
}

export function normalizeAddress(address: string, cwd: string): string {
  if (address.startsWith("unix:")) return address;
  const isSocketPath = address.includes("/") || address.endsWith(".sock");
  if (isSocketPath) return isAbsolute(address) ? address : resolve(cwd, address);
  return address;
}
