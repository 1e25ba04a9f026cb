import { describe, expect, it } from "vitest";
import { expectVipmeshError } from "../test/expect-error.ts";
import { matchesConstraints, parseConstraint } from "./constraints.ts";
import type { Node } from "./types.ts";

const node = (id: string, hostname: string, labels: Record<string, string> = {}, engineLabels?: Record<string, string>): Node => ({
  id,
  version: 1,
  createdAt: "",
  updatedAt: "",
  spec: { labels, availability: "active" },
  description: { hostname, ...(engineLabels ? { engineLabels } : {}) },
  status: { state: "ready", message: "", addr: "192.168.0.1" },
});

describe("parseConstraint", () => {
  it.each([
    ["node.hostname==n1", { key: "node.hostname", op: "==", value: "n1" }],
    ["node.id!=abc123", { key: "node.id", op: "!=", value: "abc123" }],
    ["node.labels.zone==eu-1", { key: "node.labels.zone", op: "==", value: "eu-1" }],
    ["  node.labels.disk.type != ssd  ", { key: "node.labels.disk.type", op: "!=", value: "ssd" }],
    ["node.labels.owner==team a", { key: "node.labels.owner", op: "==", value: "team a" }],
    ["engine.labels.os==linux", { key: "engine.labels.os", op: "==", value: "linux" }],
  ])("parses %j", (text, expected) => {
    expect(parseConstraint(text)).toEqual(expected);
  });

  it.each([
    "",
    "node.platform.arch==x86_64",
    "hostname==n1",
    "node.hostname=n1",
    "node.hostname==",
    "node.hostname",
    "node.labels.==x",
    "node.labels.zone<>a",
    "engine.labels.==x",
    "engine.hostname==n1",
  ])("rejects %j and quotes it", (text) => {
    expectVipmeshError(() => parseConstraint(text), "invalid_argument", `constraint "${text}"`, "node.hostname==NAME");
  });
});

describe("matchesConstraints", () => {
  const n1 = node("id-1", "n1", { zone: "a", disk: "ssd" });

  it.each([
    [[], true],
    [["node.hostname==n1"], true],
    [["node.hostname==n2"], false],
    [["node.hostname!=n2"], true],
    [["node.hostname!=n1"], false],
    [["node.id==id-1"], true],
    [["node.id==n1"], false],
    [["node.id!=id-1"], false],
    [["node.labels.zone==a"], true],
    [["node.labels.zone==b"], false],
    [["node.labels.zone!=b"], true],
    [["node.labels.zone!=a"], false],
    [["node.labels.rack==r1"], false],
    [["node.labels.rack!=r1"], true],
    [["node.labels.zone==a", "node.labels.disk==ssd"], true],
    [["node.labels.zone==a", "node.labels.disk==hdd"], false],
  ] as const)("%j → %s", (constraints, expected) => {
    expect(matchesConstraints(n1, constraints)).toBe(expected);
  });

  it("does not confuse a node's labels with its hostname", () => {
    expect(matchesConstraints(node("x", "n1", { hostname: "n2" }), ["node.labels.hostname==n2"])).toBe(true);
    expect(matchesConstraints(node("x", "n1", { hostname: "n2" }), ["node.hostname==n2"])).toBe(false);
  });

  it("keeps the admin's labels and the node's own apart: a node's own label cannot satisfy node.labels", () => {
    const own = node("x", "n1", {}, { zone: "a" });
    expect(matchesConstraints(own, ["node.labels.zone==a"])).toBe(false);
    expect(matchesConstraints(own, ["engine.labels.zone==a"])).toBe(true);
    expect(matchesConstraints(own, ["engine.labels.zone!=a"])).toBe(false);
    // both set: each constraint reads its own map
    const both = node("y", "n2", { zone: "admin" }, { zone: "agent" });
    expect(matchesConstraints(both, ["node.labels.zone==admin", "engine.labels.zone==agent"])).toBe(true);
    expect(matchesConstraints(both, ["node.labels.zone==agent"])).toBe(false);
    // a node stored before engine labels has none
    expect(matchesConstraints(n1, ["engine.labels.zone==a"])).toBe(false);
  });

  it("rejects a malformed constraint instead of ignoring it", () => {
    expectVipmeshError(() => matchesConstraints(n1, ["node.role=manager"]), "invalid_argument", "node.role=manager");
  });

  it("takes compose's usual role and OS constraints: every node is a Linux worker; the manager runs no tasks", () => {
    expect(matchesConstraints(n1, ["node.role==worker", "node.role != manager", "node.platform.os==linux"])).toBe(true);
    expect(matchesConstraints(n1, ["node.platform.os==windows"])).toBe(false);
    expectVipmeshError(() => parseConstraint("node.role == manager"), "invalid_argument", "runs none", "node.role==worker");
  });
});
