// Placement constraints, in swarm's syntax: node.hostname==X, node.id!=Y,
// node.labels.K==V.

import { invalid } from "./errors.ts";
import type { Node } from "./types.ts";

export interface Constraint {
  key: string;
  op: "==" | "!=";
  value: string;
}

const SYNTAX = /^\s*(node\.(?:id|hostname|labels\.[^=!\s]+))\s*(==|!=)\s*(\S.*?)\s*$/;

export function parseConstraint(text: string): Constraint {
  const m = SYNTAX.exec(text);
  if (!m) {
    throw invalid(
      `constraint "${text}" is not understood: use node.hostname==NAME, node.id==ID or node.labels.KEY==VALUE (or !=)`,
    );
  }
  return { key: m[1]!, op: m[2] as Constraint["op"], value: m[3]! };
}

function nodeValue(node: Node, key: string): string | undefined {
  if (key === "node.id") return node.id;
  if (key === "node.hostname") return node.description.hostname;
  return node.spec.labels[key.slice("node.labels.".length)];
}

export function matchesConstraints(node: Node, constraints: readonly string[]): boolean {
  return constraints.every((text) => {
    const c = parseConstraint(text);
    const equal = nodeValue(node, c.key) === c.value;
    return c.op === "==" ? equal : !equal;
  });
}
