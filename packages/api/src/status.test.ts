import { status } from "@grpc/grpc-js";
import { type ErrorCode, VipmeshError } from "@vipmesh/core";
import { describe, expect, it } from "vitest";
import { grpcStatusOf, statusName, toStatus } from "./status.ts";

describe("the error table", () => {
  const expected: [ErrorCode, status][] = [
    ["invalid_argument", status.INVALID_ARGUMENT],
    ["already_exists", status.ALREADY_EXISTS],
    ["not_found", status.NOT_FOUND],
    ["failed_precondition", status.FAILED_PRECONDITION],
    ["resource_exhausted", status.RESOURCE_EXHAUSTED],
    ["aborted", status.ABORTED],
    ["unavailable", status.UNAVAILABLE],
  ];

  it.each(expected)("maps %s to its gRPC status", (code, grpcStatus) => {
    expect(grpcStatusOf(code)).toBe(grpcStatus);
    const s = toStatus(new VipmeshError(code, `because of ${code}`));
    expect(s.code).toBe(grpcStatus);
    expect(s.details).toBe(`because of ${code}`);
  });

  it("answers INTERNAL for anything that is not a domain error", () => {
    const s = toStatus(new TypeError("x is undefined"));
    expect(s.code).toBe(status.INTERNAL);
    expect(s.details).toContain("x is undefined");
  });

  it("names statuses for people", () => {
    expect(statusName(status.NOT_FOUND)).toBe("NOT_FOUND");
    expect(statusName(undefined)).toBe("UNKNOWN");
  });
});
