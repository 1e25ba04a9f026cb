import { randomBytes } from "node:crypto";

/** 25 lowercase base-36 characters, like swarm's object IDs. */
export function newId(): string {
  let s = "";
  while (s.length < 25) s += BigInt(`0x${randomBytes(16).toString("hex")}`).toString(36);
  return s.slice(0, 25);
}
