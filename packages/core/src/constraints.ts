// Placement constraints, in swarm's syntax: node.hostname==X, node.id!=Y,
// node.labels.K==V (the admin's labels, spec.labels) and engine.labels.K==V
// (the labels the node's agent reports, description.engineLabels): a node
// cannot give itself a label that draws tasks placed by the admin's.

import { invalid } from "./errors.ts";
import type { Node } from "./types.ts";

export interface Constraint {
  key: string;
  op: "==" | "!=";
  value: string;
}

const SYNTAX = /^\s*(node\.(?:id|hostname|labels\.[^=!\s]+)|engine\.labels\.[^=!\s]+)\s*(==|!=)\s*(\S.*?)\s*$/;

export function parseConstraint(text: string): Constraint {
  const m = SYNTAX.exec(text);
  if (!m) {
    throw invalid(
      `constraint "${text}" is not understood: use node.hostname==NAME, node.id==ID, node.labels.KEY==VALUE (a label set with \`vipmesh node update --label-add\`) or engine.labels.KEY==VALUE (a label the node's agent reports), or != for any of them`,
    );
  }
  return { key: m[1]!, op: m[2] as Constraint["op"], value: m[3]! };
}

function nodeValue(node: Node, key: string): string | undefined {
  if (key === "node.id") return node.id;
  if (key === "node.hostname") return node.description.hostname;
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
