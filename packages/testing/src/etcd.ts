// A private single-member etcd for tests of the managers on etcd: on
// 127.0.0.1, free ports, a temporary directory, fast elections (one member:
// nothing to wait for).

import { connectEtcd, type Etcd3, type EtcdMember, startEtcd } from "@vipmesh/etcd";
import { inCi } from "./kernel-guard.ts";
import { freePort } from "./ports.ts";
import { tempDir } from "./wait.ts";
import { existsSync } from "node:fs";
import { describe, it } from "vitest";

export interface TestEtcd {
  member: EtcdMember;
  endpoint: string;
  /** A new client (each "manager" of a test has its own); closed by stop(). */
  client(): Etcd3;
  stop(): Promise<void>;
}

export async function startTestEtcd(): Promise<TestEtcd> {
  const dir = tempDir("vipmesh-ha-etcd-");
  const member = startEtcd({ name: "t1", dir: dir.path, host: "127.0.0.1", clientPort: await freePort(), peerPort: await freePort(), heartbeatMs: 100, electionMs: 1000 });
  const clients: Etcd3[] = [];
  const stop = async () => {
    for (const c of clients) c.close();
    await member.stop();
    dir.remove();
  };
  try {
    await member.ready();
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    member,
    endpoint: member.clientUrl,
    client: () => {
      const c = connectEtcd({ endpoints: [member.clientUrl], tls: undefined });
      clients.push(c);
      return c;
    },
    stop,
  };
}

/** describe() for tests that need etcd: skipped loudly where it is not installed, failed under CI. */
export function etcdDescribe(name: string, fn: () => void): void {
  if (existsSync("/usr/bin/etcd")) return void describe(name, fn);
  if (inCi()) return void describe(name, () => it("has etcd", () => { throw new Error("/usr/bin/etcd is not installed (scripts/bootstrap.sh installs it)"); }));
  console.warn(`\n!! SKIPPED ${name}: /usr/bin/etcd is not installed (under CI=true this fails instead)\n`);
  describe.skip(name, fn);
}
