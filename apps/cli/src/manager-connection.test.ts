import { status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { describeManagerError } from "./manager-connection.ts";

describe("describeManagerError", () => {
  it("passes the manager's own message through", () => {
    expect(describeManagerError({ code: status.NOT_FOUND, details: "service web not found" }, "h:1", 5000)).toBe(
      "service web not found",
    );
  });

  it("names the address when the manager cannot be reached", () => {
    const details = "No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ";
    expect(describeManagerError({ code: status.UNAVAILABLE, details }, "127.0.0.1:1", 5000)).toBe(
      "cannot reach the vipmesh manager at 127.0.0.1:1 (connect ECONNREFUSED 127.0.0.1:1); " +
        "is it running? Pass --host or set VIPMESH_HOST",
    );
    const older = "No connection established. Last error: connect ENOENT /run/x.sock (2025-01-01T00:00:00.000Z)";
    expect(describeManagerError({ code: status.UNAVAILABLE, details: older }, "/run/x.sock", 5000)).toContain(
      "at /run/x.sock (connect ENOENT /run/x.sock);",
    );
  });

  it("keeps an UNAVAILABLE the manager chose to send", () => {
    expect(describeManagerError({ code: status.UNAVAILABLE, details: "the store is closing" }, "h:1", 5000)).toBe(
      "the store is closing",
    );
  });

  it("says when the manager did not answer in time", () => {
    expect(describeManagerError({ code: status.DEADLINE_EXCEEDED, details: "Deadline exceeded" }, "h:1", 30_000)).toBe(
      "the vipmesh manager at h:1 did not answer within 30s",
    );
  });

  it("falls back to the status name without details", () => {
    expect(describeManagerError({ code: status.INTERNAL, details: "" }, "h:1", 5000)).toBe("INTERNAL");
  });
});
