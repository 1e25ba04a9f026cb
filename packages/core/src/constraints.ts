// Placement constraints, in swarm's syntax: node.hostname==X, node.id!=Y,
// node.labels.K==V (the admin's labels, spec.labels) and engine.labels.K==V
// (the labels the node's agent reports, description.engineLabels): a node
// cannot give itself a label that draws tasks placed by the admin's.
// Compose files' usual node.role==worker and node.platform.os==linux hold
// for every node: each runs an agent (a worker; the manager runs no tasks) on Linux.

import { invalid } from "./errors.ts";
import type { Node } from "./types.ts";

export interface Constraint {
  key: string;
  op: "==" | "!=";
  value: string;
}

const SYNTAX = /^\s*(node\.(?:id|hostname|role|platform\.os|labels\.[^=!\s]+)|engine\.labels\.[^=!\s]+)\s*(==|!=)\s*(\S.*?)\s*$/;

/** What every node is: the values of the keys no node differs in. */
const EVERY_NODE: Record<string, string> = { "node.role": "worker", "node.platform.os": "linux" };

export function parseConstraint(text: string): Constraint {
  const m = SYNTAX.exec(text);
  if (!m) {
    throw invalid(
      `constraint "${text}" is not understood: use node.hostname==NAME, node.id==ID, node.role==worker, node.platform.os==linux, node.labels.KEY==VALUE (a label set with \`vipmesh node update --label-add\`) or engine.labels.KEY==VALUE (a label the node's agent reports), or != for any of them`,
    );
  }
  const c = { key: m[1]!, op: m[2] as Constraint["op"], value: m[3]! };
  if (c.key === "node.role" && c.op === "==" && c.value === "manager") {
    throw invalid(`constraint "${text}" places tasks on the manager, which runs none: every node running tasks is a worker (node.role==worker)`);
  }
  return c;
}

function nodeValue(node: Node, key: string): string | undefined {
  if (key === "node.id") return node.id;
  if (key === "node.hostname") return node.description.hostname;
  if (key in EVERY_NODE) return EVERY_NODE[key];
  if (key.startsWith("engine.labels.")) return node.description.engineLabels?.[key.slice("engine.labels.".length)];
  return node.spec.labels[key.slice("node.labels.".length)];
}

export function matchesConstraints(node: Node, constraints: readonly string[]): boolean {
  return constraints.every((text) => {
    const c = parseConstraint(text);
    const equal = nodeValue(node, c.key) === c.value;
    return c.op === "==" ? equal : !equal;
  });
}
