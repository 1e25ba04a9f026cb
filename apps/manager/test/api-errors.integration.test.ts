// Every bad input gets its status code and a message a person can act on,
// and leaves nothing behind: not in the store, not in the allocators.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { call, everything, failure, type Harness, serviceSpec, startHarness } from "./harness.ts";

let h: Harness;
beforeEach(async () => {
  h = await startHarness({ addressPool: "10.0.0.0/22" });
});
afterEach(async () => {
  await h.close();
});

type Rejection = [what: string, call: Promise<unknown>, status: string, messageMentions: string];

async function expectRejections(cases: Rejection[]): Promise<void> {
  // the calls are in flight together and answered in any order (reads overtake queued writes): all settle first
  const failures = await Promise.all(cases.map(([, p]) => failure(p)));
  cases.forEach(([what, , code, mentions], i) => {
    expect({ what, code: failures[i]!.code }).toEqual({ what, code });
    expect(failures[i]!.details, what).toContain(mentions);
  });
}

const network = (name: string, subnet?: string, extra: object = {}) => ({
  spec: { name, driver: "overlay", ipam: subnet ? [{ subnet }] : [], ...extra },
});

describe("bad input", () => {
  it("networks: each rejection has its status and leaves the store and allocators as they were", async () => {
    await call(h.client, "createNetwork", network("small", "10.9.0.0/29"));
    await call(h.client, "createService", {
      spec: serviceSpec("users", { networks: [{ target: "small" }], replicated: { replicas: 0 } }),
    });
    const before = await everything(h);

    const cases: Rejection[] = [
      ["name against Docker's rule", call(h.client, "createNetwork", network("_bad")), "INVALID_ARGUMENT", "_bad"],
      ["no name", call(h.client, "createNetwork", network("")), "INVALID_ARGUMENT", "name is required"],
      ["subnet not a CIDR", call(h.client, "createNetwork", network("n1", "10.0.3.0")), "INVALID_ARGUMENT", "10.0.3.0"],
      ["host bits set", call(h.client, "createNetwork", network("n1", "10.0.3.1/24")), "INVALID_ARGUMENT", "10.0.3.0/24"],
      ["unknown driver", call(h.client, "createNetwork", network("n1", undefined, { driver: "bridge" })), "INVALID_ARGUMENT", "bridge"],
      ["unknown option", call(h.client, "createNetwork", network("n1", undefined, { options: { mtu: "9000" } })), "INVALID_ARGUMENT", "mtu"],
      ["duplicate name", call(h.client, "createNetwork", network("small")), "ALREADY_EXISTS", "small"],
      ["overlapping subnet", call(h.client, "createNetwork", network("n1", "10.9.0.0/16")), "FAILED_PRECONDITION", "overlaps 10.9.0.0/29"],
      ["remove a network in use", call(h.client, "removeNetwork", { network: "small" }), "FAILED_PRECONDITION", "users"],
      ["remove an unknown network", call(h.client, "removeNetwork", { network: "nope" }), "NOT_FOUND", "nope"],
      ["remove the routing mesh", call(h.client, "removeNetwork", { network: "ingress" }), "FAILED_PRECONDITION", "routing mesh"],
      ["a second ingress network", call(h.client, "createNetwork", network("mesh2", undefined, { ingress: true })), "ALREADY_EXISTS", "only one"],
      ["inspect an unknown network", call(h.client, "inspectNetwork", { network: "nope" }), "NOT_FOUND", "nope"],
    ];
    await expectRejections(cases);
    expect(await everything(h)).toEqual(before);

    // the pool of /24s (10.0.0.0/22 here) runs out: RESOURCE_EXHAUSTED, and no VNI or subnet is lost
    const made = [];
    for (let i = 0; i < 4; i++) made.push((await call(h.client, "createNetwork", network(`auto${i}`))).network!);
    expect(made.map((n) => n.ipam?.subnet)).toEqual(["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"]);
    const f = await failure(call(h.client, "createNetwork", network("auto4")));
    expect(f.code).toBe("RESOURCE_EXHAUSTED");
    expect(f.details).toContain("10.0.0.0/22");
    await call(h.client, "removeNetwork", { network: "auto3" });
    const again = (await call(h.client, "createNetwork", network("auto5"))).network!;
    expect(again.ipam?.subnet).toBe("10.0.3.0/24");
    // VNIs are serial from 4096 (the built-in ingress network's), small got 4097: auto0..3 got
    // 4098..4101; the failed auto4 took none, and auto3's released 4101 is not reused before the range wraps
    expect(made.map((n) => n.vni)).toEqual([4098, 4099, 4100, 4101]);
    expect(again.vni).toBe(4102);
  });

  it("services: each rejection has its status and leaves the store and allocators as they were", async () => {
    await call(h.client, "createNetwork", network("tiny", "10.9.0.0/29")); // 5 usable addresses after the gateway
    await call(h.client, "createService", {
      spec: serviceSpec("web", { networks: [{ target: "tiny" }], replicated: { replicas: 0 }, endpointSpec: { ports: [{ targetPort: 80, publishedPort: 8080 }] } }),
    });
    const before = await everything(h);
    const spec = (extra: object) => ({ spec: serviceSpec("api", { replicated: { replicas: 0 }, ...extra }) });

    const cases: Rejection[] = [
      ["name against Docker's rule", call(h.client, "createService", { spec: serviceSpec("-api") }), "INVALID_ARGUMENT", "-api"],
      ["no command", call(h.client, "createService", spec({ taskTemplate: { container: { command: [] } } })), "INVALID_ARGUMENT", "command"],
      ["target port out of range", call(h.client, "createService", spec({ endpointSpec: { ports: [{ targetPort: 70000 }] } })), "INVALID_ARGUMENT", "70000"],
      ["target port zero", call(h.client, "createService", spec({ endpointSpec: { ports: [{ targetPort: 0 }] } })), "INVALID_ARGUMENT", "targetPort"],
      ["unknown protocol", call(h.client, "createService", spec({ endpointSpec: { ports: [{ targetPort: 80, protocol: "icmp" }] } })), "INVALID_ARGUMENT", "icmp"],
      ["unknown publish mode", call(h.client, "createService", spec({ endpointSpec: { ports: [{ targetPort: 80, publishMode: "nodeport" }] } })), "INVALID_ARGUMENT", "nodeport"],
      ["unknown endpoint mode", call(h.client, "createService", spec({ endpointSpec: { mode: "rr" } })), "INVALID_ARGUMENT", "rr"],
      ["dnsrr with an ingress port", call(h.client, "createService", spec({ endpointSpec: { mode: "dnsrr", ports: [{ targetPort: 80 }] } })), "INVALID_ARGUMENT", "dnsrr"],
      ["too many replicas", call(h.client, "createService", spec({ replicated: { replicas: 10_000_000 } })), "INVALID_ARGUMENT", "10000000"],
      ["bad env", call(h.client, "createService", spec({ taskTemplate: { container: { command: ["x"], env: ["NOVALUE"] } } })), "INVALID_ARGUMENT", "NOVALUE"],
      ["bad constraint", call(h.client, "createService", spec({ taskTemplate: { container: { command: ["x"] }, placement: { constraints: ["node.os=linux"] } } })), "INVALID_ARGUMENT", "node.os=linux"],
      ["unknown network", call(h.client, "createService", spec({ networks: [{ target: "nowhere" }] })), "NOT_FOUND", "nowhere"],
      ["duplicate name", call(h.client, "createService", { spec: serviceSpec("web") }), "ALREADY_EXISTS", "web"],
      ["published port taken", call(h.client, "createService", spec({ endpointSpec: { ports: [{ targetPort: 81, publishedPort: 8080 }] } })), "FAILED_PRECONDITION", "web"],
      ["VXLAN's port published", call(h.client, "createService", spec({ endpointSpec: { ports: [{ targetPort: 53, publishedPort: 4789, protocol: "udp" }] } })), "INVALID_ARGUMENT", "VXLAN"],
      ["the routing mesh as a network", call(h.client, "createService", spec({ networks: [{ target: "ingress" }] })), "INVALID_ARGUMENT", "--publish"],
      ["inspect unknown", call(h.client, "inspectService", { service: "nope" }), "NOT_FOUND", "nope"],
      ["remove unknown", call(h.client, "removeService", { service: "nope" }), "NOT_FOUND", "nope"],
      ["rollback without history", call(h.client, "rollbackService", { service: "web" }), "FAILED_PRECONDITION", "previous"],
    ];
    await expectRejections(cases);
    expect(await everything(h)).toEqual(before);

    // updates: stale version, rename, port conflict — all leave the service untouched
    const web = (await call(h.client, "inspectService", { service: "web" })).service!;
    const other = (await call(h.client, "createService", spec({ endpointSpec: { ports: [{ targetPort: 80, publishedPort: 9090 }] } }))).service!;
    const stale = await failure(call(h.client, "updateService", { service: "web", version: Number(web.version) - 1, spec: web.spec! }));
    expect(stale.code).toBe("ABORTED");
    const rename = await failure(
      call(h.client, "updateService", { service: "web", version: web.version, spec: { ...web.spec!, annotations: { name: "web2" } } }),
    );
    expect(rename.code).toBe("INVALID_ARGUMENT");
    const conflict = await failure(
      call(h.client, "updateService", {
        service: "api",
        version: other.version,
        spec: { ...other.spec!, endpointSpec: { ports: [{ targetPort: 80, publishedPort: 8080 }] } },
      }),
    );
    expect(conflict.code).toBe("FAILED_PRECONDITION");
    expect((await call(h.client, "inspectService", { service: "web" })).service).toEqual(web);
    expect((await call(h.client, "inspectService", { service: "api" })).service).toEqual(other);
    // port 9090 is still api's: nobody else may take it
    expect((await failure(call(h.client, "createService", { spec: serviceSpec("x", { replicated: { replicas: 0 }, endpointSpec: { ports: [{ targetPort: 1, publishedPort: 9090 }] } }) }))).code).toBe("FAILED_PRECONDITION");

    // address exhaustion: /29 has 5 usable addresses; web's VIP holds one
    const vips = [];
    for (const name of ["s1", "s2", "s3", "s4"]) {
      const s = await call(h.client, "createService", { spec: serviceSpec(name, { networks: [{ target: "tiny" }], replicated: { replicas: 0 } }) });
      vips.push(s.service!.endpoint!.virtualIps[0]!.addr);
    }
    expect(vips).toEqual(["10.9.0.3/29", "10.9.0.4/29", "10.9.0.5/29", "10.9.0.6/29"]);
    const full = await failure(call(h.client, "createService", { spec: serviceSpec("s5", { networks: [{ target: "tiny" }] }) }));
    expect(full.code).toBe("RESOURCE_EXHAUSTED");
    expect(full.details).toContain("tiny");
    expect((await everything(h)).services.map((s) => s.spec?.annotations?.name)).not.toContain("s5");
  });

  it("nodes and sessions: each rejection has its status", async () => {
    const agent = await h.addAgent("node1");
    const node = (await call(h.client, "inspectNode", { node: "node1" })).node!;
    const cases: Rejection[] = [
      ["bad availability", call(h.client, "updateNode", { node: "node1", version: node.version, spec: { availability: "pause" } }), "INVALID_ARGUMENT", "pause"],
      ["stale version", call(h.client, "updateNode", { node: "node1", version: 1, spec: { availability: "drain" } }), "ABORTED", "node1"],
      ["unknown node", call(h.client, "inspectNode", { node: "node9" }), "NOT_FOUND", "node9"],
      ["remove a ready node", call(h.client, "removeNode", { node: "node1" }), "FAILED_PRECONDITION", "--force"],
      ["register without an address", call(agent.client, "register", { hostname: "node2", addr: "nowhere" }), "INVALID_ARGUMENT", "nowhere"],
      ["register a bad hostname", call(agent.client, "register", { hostname: "-x", addr: "192.0.2.200" }), "INVALID_ARGUMENT", "-x"],
    ];
    await expectRejections(cases);
    expect((await call(h.client, "listNodes", {})).nodes).toHaveLength(1);

    // a session must start with `open`, for a registered node
    const session = agent.client.session();
    const closed = new Promise<{ code: number; details: string }>((resolve) => session.on("error", resolve));
    session.on("data", () => {});
    session.write({ open: { nodeId: "nosuchnode" } });
    expect((await closed).details).toContain("nosuchnode");
    session.cancel();
  });
});
