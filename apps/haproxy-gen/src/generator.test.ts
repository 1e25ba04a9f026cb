import { tempDir, waitFor } from "@vipmesh/testing";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Generator } from "./generator.ts";
import { runtimeCommands } from "./haproxy.ts";
import type { Slot, TemplateData } from "./model.ts";

const runtime = { statsSocket: "/run/haproxy/admin.sock", statsPort: 8404, tlsCert: "" };
const slot = (name: string, addr: string, port: number, enabled = true, weight = 1): Slot => ({ name, addr, port, weight, enabled, node: enabled ? addr : "" });
const data = (servers: Slot[]): TemplateData => ({
  version: 1,
  nodes: [],
  tcp: [],
  http: [],
  backends: [{ name: "be_web_8080", service: "web", mode: "tcp", balance: "roundrobin", publishMode: "ingress", port: 8080, servers }],
  udp: [],
  warnings: [],
  runtime,
});

describe("runtimeCommands", () => {
  it("readdresses and enables slots that gained a node (with its weight: HAProxy keeps a slot's last one), puts those that lost theirs in maintenance, leaves the rest alone", () => {
    const prev = data([slot("s1", "192.168.100.11", 8080), slot("s2", "192.168.100.12", 8080), slot("s3", "0.0.0.0", 0, false), slot("s4", "192.168.100.14", 8080)]);
    const next = data([slot("s1", "192.168.100.11", 8080, true, 3), slot("s2", "192.168.100.13", 8080), slot("s3", "192.168.100.15", 8080), slot("s4", "0.0.0.0", 0, false)]);
    expect(runtimeCommands(prev, next)).toEqual([
      "set weight be_web_8080/s1 3",
      "set server be_web_8080/s2 addr 192.168.100.13 port 8080",
      "set weight be_web_8080/s2 1",
      "set server be_web_8080/s2 state ready",
      "set server be_web_8080/s3 addr 192.168.100.15 port 8080",
      "set weight be_web_8080/s3 1",
      "set server be_web_8080/s3 state ready",
      "set server be_web_8080/s4 state maint",
    ]);
    expect(runtimeCommands(prev, prev)).toEqual([]);
  });
});

describe("Generator without a manager", () => {
  let dir: { path: string; remove: () => void } | undefined;
  afterEach(() => dir?.remove());

  it("fails one-shot with the reason and writes nothing", async () => {
    dir = tempDir("vipmesh-hg-");
    const output = join(dir.path, "haproxy.cfg");
    const g = new Generator({ managers: [`unix:${join(dir.path, "nobody.sock")}`], credentials: "insecure", output, runtime, log: () => {} });
    await expect(g.once()).rejects.toThrow(/cannot watch the cluster/);
    expect(existsSync(output)).toBe(false);
  });

  it("in watch mode keeps the config it has and tries the next manager, waiting longer each time", async () => {
    dir = tempDir("vipmesh-hg-");
    const output = join(dir.path, "haproxy.cfg");
    writeFileSync(output, "# the last good config\n");
    const logs: string[] = [];
    const managers = ["a", "b"].map((m) => `unix:${join(dir!.path, `${m}.sock`)}`);
    const g = new Generator({ managers, credentials: "insecure", output, runtime, log: (l) => logs.push(l) });
    g.watch();
    try {
      await waitFor("three attempts", () => logs.length >= 3, 10_000);
    } finally {
      await g.stop();
    }
    const waits = logs.map((l) => Number(/ in (\d+) ms$/.exec(l)?.[1]));
    expect(waits.slice(0, 3)).toEqual([500, 1000, 2000]);
    expect(logs[0]).toContain("the last config keeps serving");
    // round robin: a, then b, then a again
    expect(logs.slice(0, 3).map((l) => /lost the manager at \S*\/(\w)\.sock;/.exec(l)?.[1])).toEqual(["a", "b", "a"]);
  });
});
