// A session's assignment as bytes, with the parts many sessions share encoded
// once. Protobuf merges an embedded message sent in pieces and concatenates
// its repeated fields, so an Assignment is its own part (version, full, keys,
// the node's own lists) followed by shared parts that hold lists only: the
// agent decodes one Assignment, as if it had been encoded whole.

import { isEmptyDelta, type ViewDelta } from "@vipmesh/core";
import { type Assignment, assignmentToWire, deltaToWire } from "./codec.ts";
import { DispatcherServiceDef } from "./proto.ts";

const serializeDown = DispatcherServiceDef.Session.responseSerialize as (msg: unknown) => Buffer;
/** SessionDown's `assignment` field: number 2, length-delimited. */
const ASSIGNMENT_TAG = (2 << 3) | 2;
const encodedParts = new WeakMap<ViewDelta, { id: number; bytes: Buffer }>();
let partIds = 0;
/** Whole messages of the current version with no part of their own, by their parts: byte for byte the same for every session that gets those parts. */
let alike = { version: -1, messages: new Map<string, Buffer>() };

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
function encodedPart(d: ViewDelta): { id: number; bytes: Buffer } {
  let p = encodedParts.get(d);
  if (!p) {
    p = { id: ++partIds, bytes: assignmentBody(serializeDown({ assignment: deltaToWire(d) })) };
    encodedParts.set(d, p);
  }
  return p;
}

/** SessionDown{assignment} as bytes: `a` (the node's own part) followed by the shared parts. */
export function encodeAssignmentDown(a: Assignment, shared: readonly ViewDelta[]): Buffer {
  const parts = shared.map(encodedPart);
  const versionOnly = !a.full && !a.encryption && isEmptyDelta(a.delta);
  const key = versionOnly ? parts.map((p) => p.id).join(",") : "";
  if (versionOnly) {
    if (alike.version !== a.version) alike = { version: a.version, messages: new Map() };
    const cached = alike.messages.get(key);
    if (cached) return cached;
  }
  // field 1 (version) alone, or the whole own part
  const own = versionOnly ? Buffer.concat([Buffer.from([1 << 3]), varint(a.version)]) : assignmentBody(serializeDown({ assignment: assignmentToWire(a) }));
  const length = parts.reduce((n, p) => n + p.bytes.length, own.length);
  const message = Buffer.concat([Buffer.from([ASSIGNMENT_TAG]), varint(length), own, ...parts.map((p) => p.bytes)]);
  if (versionOnly) alike.messages.set(key, message);
  return message;
}

/** The dispatcher service as a manager serves it: a session message may come already encoded (encodeAssignmentDown). */
export const DispatcherServerDef = {
  ...DispatcherServiceDef,
  Session: { ...DispatcherServiceDef.Session, responseSerialize: (msg: unknown) => (Buffer.isBuffer(msg) ? msg : serializeDown(msg)) },
};
