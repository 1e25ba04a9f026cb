import { describe, expect, it } from "vitest";
import { frame, logDetails, rfc3339NanoFixed } from "../src/routes/logs.ts";

describe("log stream pieces", () => {
  it("frames a payload as Docker's multiplexed stream does", () => {
    const f = frame(2, Buffer.from("hi\n"));
    expect([...f.subarray(0, 8)]).toEqual([2, 0, 0, 0, 0, 0, 0, 3]);
    expect(f.subarray(8).toString()).toBe("hi\n");
  });

  it("gives the details as moby's ServiceLogs: sorted keys, escaped values", () => {
    expect(logDetails({ nodeId: "n1", serviceId: "s 1", taskId: "t1" })).toBe(
      "com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s%201,com.docker.swarm.task.id=t1",
    );
  });

  it("writes timestamps with nine fixed fraction digits", () => {
    expect(rfc3339NanoFixed(new Date("2025-01-02T03:04:05.006Z"))).toBe("2025-01-02T03:04:05.006000000Z");
  });
});
