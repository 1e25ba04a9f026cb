// An in-memory embedded DNS for unit tests of the agent: keeps each
// sandbox's records and answers names from them as the real server would.

import { type DnsRecords, lookupDnsAddresses } from "@vipmesh/core";
import type { DnsDriver } from "./types.ts";

export class FakeDns implements DnsDriver {
  private readonly records = new Map<string, DnsRecords>();

  async attach(sandbox: string, records: DnsRecords): Promise<void> {
    this.records.set(sandbox, records);
  }

  async detach(sandbox: string): Promise<void> {
    this.records.delete(sandbox);
  }

  async close(): Promise<void> {
    this.records.clear();
  }

  /** The addresses `name` resolves to in `sandbox` (sorted), or undefined: not attached, or NXDOMAIN. */
  resolve(sandbox: string, name: string): string[] | undefined {
    const records = this.records.get(sandbox);
    return records && lookupDnsAddresses(records, name)?.addrs;
  }

  /** Per attached sandbox, what each of `names` resolves to there. */
  dump(names: readonly string[]): string {
    return [...this.records.keys()]
      .sort()
      .flatMap((sandbox) => [`dns ${sandbox}`, ...names.map((n) => `  ${n} -> ${this.resolve(sandbox, n)?.join(" ") ?? "NXDOMAIN"}`)])
      .map((l) => `${l}\n`)
      .join("");
  }
}
