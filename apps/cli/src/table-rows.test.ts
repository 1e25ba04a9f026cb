import { describe, expect, it } from "vitest";
import { NODE_ID, network, node, service, serviceSpec, task } from "../test/wire-fixtures.ts";
import { formatTable } from "./table.ts";
import {
  NETWORK_HEADERS,
  managerRows,
  NODE_HEADERS,
  SERVICE_HEADERS,
  TASK_HEADERS,
  formatPorts,
  networkRows,
  nodeRows,
  serviceRows,
  taskRows,
} from "./table-rows.ts";

describe("service ls", () => {
  it("shows running/desired replicas and published ports", () => {
    const tasks = [
      task({ id: "a" }),
      task({ id: "b", slot: 2, status: { state: "starting", timestamp: "", message: "", err: "", health: "" } }),
      task({ id: "c", slot: 3, desiredState: "shutdown" }),
    ];
    const global = service({
      id: "g123456789012345",
      spec: serviceSpec({ annotations: { name: "agent", labels: {} }, mode: "global", global: {}, replicated: undefined }),
      endpoint: { spec: null, ports: [], virtualIps: [] },
    });
    expect(formatTable(SERVICE_HEADERS, serviceRows([service(), global], tasks))).toBe(
      "ID             NAME        MODE         REPLICAS   PORTS\n" +
        "g12345678901   agent       global       0/0\n" +
        "s1a2b3c4d5e6   collabweb   replicated   1/3        *:30000->80/tcp\n",
    );
  });

  it("writes host-mode ports without the routing-mesh star", () => {
    expect(
      formatPorts([
        { protocol: "tcp", targetPort: 80, publishedPort: 30001, publishMode: "ingress", proxyProtocol: "" },
        { protocol: "udp", targetPort: 53, publishedPort: 53, publishMode: "host", proxyProtocol: "" },
      ]),
    ).toBe("*:30001->80/tcp, :53->53/udp");
  });
});

describe("service ps", () => {
  it("groups tasks by slot, newest first, with history marked", () => {
    const now = new Date("2025-01-01T00:00:12.000Z");
    const tasks = [
      task({
        id: "old1",
        createdAt: "2025-01-01T00:00:00.000Z",
        desiredState: "shutdown",
        status: { state: "failed", timestamp: "2025-01-01T00:00:02.000Z", message: "", err: "exit 1", health: "" },
      }),
      task({ id: "new1", createdAt: "2025-01-01T00:00:03.000Z" }),
      task({ id: "new2", slot: 2, nodeId: "", status: { state: "pending", timestamp: "", message: "", err: "", health: "" } }),
    ];
    expect(formatTable(TASK_HEADERS, taskRows(tasks, new Map([[NODE_ID, "node-1"]]), now))).toBe(
      "ID     NAME              SERVICE     NODE     DESIRED STATE   CURRENT STATE            ERROR\n" +
        "new1   collabweb.1       collabweb   node-1   Running         Running 10 seconds ago\n" +
        "old1    \\_ collabweb.1   collabweb   node-1   Shutdown        Failed 10 seconds ago    exit 1\n" +
        "new2   collabweb.2       collabweb            Running         Pending\n",
    );
  });
});

describe("service ps of a task being prepared", () => {
  it("shows what it is at beside Preparing, and the reason of a task that waits in ERROR", () => {
    const now = new Date("2025-01-01T00:00:12.000Z");
    const tasks = [
      task({ id: "p1", status: { state: "preparing", timestamp: "2025-01-01T00:00:09.000Z", message: "pulling nginx:1.25: 12 MiB of 30 MiB", err: "", health: "" } }),
      task({ id: "p2", slot: 2, status: { state: "preparing", timestamp: "2025-01-01T00:00:09.000Z", message: "preparing", err: "", health: "" } }),
      task({ id: "p3", slot: 3, nodeId: "", status: { state: "pending", timestamp: "", message: "pending task scheduling", err: "no suitable node (3 nodes lack the container runtime)", health: "" } }),
    ];
    expect(taskRows(tasks, new Map([[NODE_ID, "node-1"]]), now).map((r) => [r[5], r[6]])).toEqual([
      ["Preparing 3 seconds ago: pulling nginx:1.25: 12 MiB of 30 MiB", ""],
      ["Preparing 3 seconds ago", ""],
      ["Pending", "no suitable node (3 nodes lack the container runtime)"],
    ]);
  });
});

describe("network ls and node ls", () => {
  it("lists networks with their subnet", () => {
    expect(formatTable(NETWORK_HEADERS, networkRows([network()]))).toBe(
      "ID             NAME     DRIVER    SUBNET\n" + "n1a2b3c4d5e6   appnet   overlay   10.0.1.0/24\n",
    );
  });

  it("lists nodes with status, availability and dataplane", () => {
    expect(formatTable(NODE_HEADERS, nodeRows([node()]))).toBe(
      "ID             HOSTNAME   STATUS   AVAILABILITY   MANAGER STATUS   ADDRESS         DATAPLANE\n" +
        "h1a2b3c4d5e6   node-1     Ready    Active                          192.168.50.11   nftables\n",
    );
  });

  it("lists managers as docker does: the leader, those reachable, those not", () => {
    const m = (hostname: string, reachable: boolean, leader: boolean) => ({ id: `${hostname}a2b3c4d5e6f7`, hostname, addr: `${hostname}:4243`, createdAt: "", reachable, leader });
    expect(formatTable(NODE_HEADERS, managerRows([m("m3", false, false), m("m1", true, true), m("m2", true, false)]))).toBe(
      "ID             HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS   ADDRESS   DATAPLANE\n" +
        "m1a2b3c4d5e6   m1         Ready     Active         Leader           m1:4243\n" +
        "m2a2b3c4d5e6   m2         Ready     Active         Reachable        m2:4243\n" +
        "m3a2b3c4d5e6   m3         Unknown   Active         Unreachable      m3:4243\n",
    );
  });
});
