// What the agent asks of the embedded DNS (server.ts serves it, fake.ts stands in).

import type { DnsRecords } from "@vipmesh/core";

export interface DnsDriver {
  /** Serves 127.0.0.11:53 in `sandbox` from `records`; a new records object replaces the last (nothing stale is answered). */
  attach(sandbox: string, records: DnsRecords): Promise<void>;
  /** Stops serving `sandbox`; not attached is fine. */
  detach(sandbox: string): Promise<void>;
  close(): Promise<void>;
}
