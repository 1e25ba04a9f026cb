// Docker's JSON for networks and nodes, both ways.

import type { Network } from "@vipmesh/core";
import { expect, test } from "vitest";
import { networkJson, networkSpecFromDocker, VXLANID_OPTION } from "../src/json/network.ts";
import { managerNodeJson, nodeJson, nodeSpecFromDocker } from "../src/json/node.ts";

test("a network create request becomes vipmesh's spec; what vipmesh lacks is refused by name", () => {
  expect(networkSpecFromDocker({ Name: "n", Driver: "overlay", Scope: "swarm", IPAM: { Config: [{ Subnet: "10.1.0.0/24" }] }, Options: { encrypted: "" }, Labels: { a: "b" } })).toEqual({
    name: "n",
    driver: "overlay",
    labels: { a: "b" },
    options: { encrypted: "" },
    ipam: [{ subnet: "10.1.0.0/24", gateway: "" }],
    ingress: false,
  });
  expect(networkSpecFromDocker({ Name: "n", IPAM: null }).ipam).toEqual([]);
  expect(() => networkSpecFromDocker({ Name: "n", Driver: "bridge" })).toThrow(/only the overlay driver/);
  expect(() => networkSpecFromDocker({ Name: "n", Attachable: true })).toThrow(/attachable/);
  expect(() => networkSpecFromDocker({ Name: "n", Labels: ["a"] })).toThrow(/Labels/);
  expect(() => networkSpecFromDocker([])).toThrow(/JSON object/);
});

test("a network in Docker's shape", () => {
  const n: Network = {
    id: "abc",
    version: 3,
    createdAt: "2025-01-01T00:00:00Z",
    updatedAt: "2025-01-01T00:00:00Z",
    spec: { name: "n", driver: "overlay", labels: { a: "b" }, options: {}, ipam: [], ingress: false },
    ipam: { subnet: "10.1.0.0/24", gateway: "10.1.0.1" },
    vni: 4097,
    encrypted: true,
  };
  const j = networkJson(n);
  expect(j).toMatchObject({ Id: "abc", Name: "n", Scope: "swarm", Driver: "overlay", Containers: {}, Labels: { a: "b" } });
  expect(j.Options).toEqual({ [VXLANID_OPTION]: "4097", encrypted: "" });
  expect(j.IPAM.Config).toEqual([{ Subnet: "10.1.0.0/24", Gateway: "10.1.0.1" }]);
});

test("a node update: availability and labels; pause and promotion refused clearly", () => {
  expect(nodeSpecFromDocker({ Role: "worker", Availability: "drain", Labels: { z: "a" } })).toEqual({ availability: "drain", labels: { z: "a" } });
  expect(() => nodeSpecFromDocker({ Role: "manager" })).toThrow(/promote\/demote is not supported/);
  expect(() => nodeSpecFromDocker({ Availability: "pause" })).toThrow(/no pause/);
});

test("a node's runtimes and offered resources in Docker's shape: Resources, Engine.Plugins of Type Runtime, and vipmesh's Runtimes", () => {
  const base = { id: "n1", version: 2, spec: { labels: {}, availability: "active" as const }, status: { state: "ready" as const, message: "", addr: "192.0.2.1" } };
  const both = nodeJson({ ...base, description: { hostname: "a", runtimes: ["process", "container"], resources: { nanoCpus: 2e9, memoryBytes: 4 * 1024 ** 3 } } });
  expect(both.Description.Resources).toEqual({ NanoCPUs: 2e9, MemoryBytes: 4 * 1024 ** 3 });
  expect(both.Description.Engine.Plugins).toEqual([
    { Type: "Runtime", Name: "process" },
    { Type: "Runtime", Name: "container" },
  ]);
  expect(both.Description.Runtimes).toEqual(["process", "container"]);
  // a node stored before agents said (the wire's empty list, a null message): process only, no resources
  const old = nodeJson({ ...base, description: { hostname: "b", runtimes: [], resources: null } });
  expect(old.Description).toMatchObject({ Resources: {}, Runtimes: ["process"], Engine: { Plugins: [{ Type: "Runtime", Name: "process" }] } });
});

test("managers as Docker's: drained, the leader marked, an unreachable one of unknown state", () => {
  const m = { id: "m1id", hostname: "m1", addr: "10.0.0.1:4243", createdAt: "2026-01-01T00:00:00Z", clusterId: "c", clusterCreatedAt: "2026-01-01T00:00:00Z" };
  const leader = managerNodeJson({ ...m, reachable: true, leader: true });
  expect(leader).toMatchObject({ Spec: { Role: "manager", Availability: "drain" }, Status: { State: "ready", Addr: "10.0.0.1" } });
  expect(leader.ManagerStatus).toEqual({ Leader: true, Reachability: "reachable", Addr: "10.0.0.1:4243" });
  expect(managerNodeJson({ ...m, reachable: true, leader: false }).ManagerStatus).toEqual({ Reachability: "reachable", Addr: "10.0.0.1:4243" });
  const gone = managerNodeJson({ ...m, reachable: false, leader: false });
  expect([gone.Status.State, gone.ManagerStatus.Reachability]).toEqual(["unknown", "unreachable"]);
});
