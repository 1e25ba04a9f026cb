// The pure parts: a member's command line, and reading a client identity.
// startEtcd and connectEtcd run against a real etcd in every test of the
// managers on etcd (@vipmesh/testing/etcd) and in the lab (TLS, namespaces).

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { connectEtcd, readEtcdTls } from "./client.ts";
import { etcdArgs, LOADED_MACHINE_TIMING } from "./daemon.ts";

const flag = (args: string[], name: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

describe("etcdArgs", () => {
  it("serves clients and peers on its address, https with mutual TLS for both when given certificates", () => {
    const args = etcdArgs(
      { name: "m2", dir: "/d", host: "192.168.100.3", initialCluster: { m1: "https://192.168.100.2:2380", m2: "https://192.168.100.3:2380" }, tls: { caFile: "/t/ca.pem", certFile: "/t/cert.pem", keyFile: "/t/key.pem" } },
      "/d",
    );
    expect(flag(args, "listen-client-urls")).toBe("https://192.168.100.3:2379");
    expect(flag(args, "initial-advertise-peer-urls")).toBe("https://192.168.100.3:2380");
    expect(flag(args, "initial-cluster")).toBe("m1=https://192.168.100.2:2380,m2=https://192.168.100.3:2380");
    expect(flag(args, "data-dir")).toBe("/d/data");
    for (const f of ["client-cert-auth", "peer-client-cert-auth"]) expect(args).toContain(`--${f}`);
    expect(flag(args, "peer-trusted-ca-file")).toBe("/t/ca.pem");
  });

  it("is a member of its own cluster alone by default, plain http without TLS, on the loaded machine's timing", () => {
    const args = etcdArgs({ name: "t", dir: "/d", host: "127.0.0.1", clientPort: 1, peerPort: 2 }, "/d");
    expect(flag(args, "initial-cluster")).toBe("t=http://127.0.0.1:2");
    expect(flag(args, "initial-cluster-state")).toBe("new");
    expect(Number(flag(args, "heartbeat-interval"))).toBe(LOADED_MACHINE_TIMING.heartbeatMs);
    expect(Number(flag(args, "election-timeout"))).toBe(LOADED_MACHINE_TIMING.electionMs);
    expect(args.some((a) => a.includes("cert"))).toBe(false);
  });
});

describe("client", () => {
  it("names the file of a client identity it cannot read", () => {
    const dir = mkdtempSync(join(tmpdir(), "vipmesh-etcd-tls-"));
    try {
      writeFileSync(join(dir, "ca.pem"), "x");
      expect(() => readEtcdTls(dir)).toThrow(`cannot read the etcd client identity's cert.pem in ${dir}`);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it("refuses to connect to no endpoint", () => {
    expect(() => connectEtcd({ endpoints: [], tls: undefined })).toThrow("no etcd endpoints given");
  });
});
