// A session's assignment as bytes, with the parts many sessions share encoded
// once. Protobuf merges an embedded message sent in pieces and concatenates
// its repeated fields, so an Assignment is its own part (version, full, keys,
// the node's own lists) followed by shared parts that hold lists only: the
// agent decodes one Assignment, as if it had been encoded whole.

import type { ViewDelta } from "@vipmesh/core";
import { type Assignment, assignmentToWire, deltaToWire } from "./codec.ts";
import { DispatcherServiceDef } from "./proto.ts";

const serializeDown = DispatcherServiceDef.Session.responseSerialize as (msg: unknown) => Buffer;
/** SessionDown's `assignment` field: number 2, length-delimited. */
const ASSIGNMENT_TAG = (2 << 3) | 2;
const encodedParts = new WeakMap<ViewDelta, Buffer>();

/** The Assignment inside an encoded SessionDown{assignment}. */
function assignmentBody(down: Buffer): Buffer {
  let at = 1; // the tag
  while (down[at]! & 0x80) at++;
  return down.subarray(at + 1);
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** A shared part, encoded the first time any session sends it (the parts are immutable). */
function encodedPart(d: ViewDelta): Buffer {
  let b = encodedParts.get(d);
  if (!b) {
    b = assignmentBody(serializeDown({ assignment: deltaToWire(d) }));
    encodedParts.set(d, b);
  }
  return b;
}

/** SessionDown{assignment} as bytes: `a` (the node's own part) followed by the shared parts. */
export function encodeAssignmentDown(a: Assignment, shared: readonly ViewDelta[]): Buffer {
  const own = serializeDown({ assignment: assignmentToWire(a) });
  if (shared.length === 0) return own;
  const body = [assignmentBody(own), ...shared.map(encodedPart)];
  const length = body.reduce((n, b) => n + b.length, 0);
  return Buffer.concat([Buffer.from([ASSIGNMENT_TAG]), varint(length), ...body]);
}

/** The dispatcher service as a manager serves it: a session message may come already encoded (encodeAssignmentDown). */
export const DispatcherServerDef = {
  ...DispatcherServiceDef,
  Session: { ...DispatcherServiceDef.Session, responseSerialize: (msg: unknown) => (Buffer.isBuffer(msg) ? msg : serializeDown(msg)) },
};
