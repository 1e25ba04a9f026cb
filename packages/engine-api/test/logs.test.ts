import { describe, expect, it } from "vitest";
import { logTime } from "@vipmesh/api";
import { frame, frameLogLine, logDetails } from "../src/routes/logs.ts";

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

  it("writes timestamps with nine fixed fraction digits (moby's RFC3339NanoFixed)", () => {
    expect(logTime(new Date("2025-01-02T03:04:05.006Z"))).toBe("2025-01-02T03:04:05.006000000Z");
  });

  const T = "2025-01-02T03:04:05.123456789Z";
  const unframe = (f: Buffer | undefined) => f && { stream: f[0], payload: f.subarray(8).toString() };

  it("frames each task log line on its own stream, with its own time when timestamps are asked for", () => {
    const all = { stdout: true, stderr: true, timestamps: false };
    expect(unframe(frameLogLine(Buffer.from(`${T} o hello\n`), all))).toEqual({ stream: 1, payload: "hello\n" });
    expect(unframe(frameLogLine(Buffer.from(`${T} e oops\n`), all))).toEqual({ stream: 2, payload: "oops\n" });
    expect(unframe(frameLogLine(Buffer.from(`${T} e oops\n`), { ...all, timestamps: true }))).toEqual({ stream: 2, payload: `${T} oops\n` });
    expect(unframe(frameLogLine(Buffer.from(`${T} o hi\n`), { ...all, timestamps: true, details: "k=v" }))).toEqual({ stream: 1, payload: `${T} k=v hi\n` });
  });

  it("leaves out the streams not asked for", () => {
    expect(frameLogLine(Buffer.from(`${T} e oops\n`), { stdout: true, stderr: false, timestamps: false })).toBeUndefined();
    expect(frameLogLine(Buffer.from(`${T} o hi\n`), { stdout: false, stderr: true, timestamps: false })).toBeUndefined();
  });

  it("sends a raw line as stdout, timed when relayed", () => {
    const f = unframe(frameLogLine(Buffer.from("vipmesh-confine: cannot run x\n"), { stdout: true, stderr: true, timestamps: true }));
    expect(f?.stream).toBe(1);
    expect(f?.payload).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z vipmesh-confine: cannot run x\n$/);
  });
});
