import { describe, expect, it } from "vitest";
import { LogPrinter, parseSinceFlag, taskLogName } from "./service-logs.ts";

const printer = () => new LogPrinter((taskId) => `web.${taskId}@node1`.padEnd(14));

describe("taskLogName", () => {
  it("names a task as docker does: service, slot, short task ID, node", () => {
    const t = { id: "3f9c0a7e21b4c5d6e7f8a9b0c", serviceName: "collabweb", slot: 2, nodeId: "n1" };
    expect(taskLogName(t, "node2")).toBe("collabweb.2.3f9c0a7e21b4@node2");
    expect(taskLogName({ ...t, slot: 0, nodeId: "h1a2b3" }, "node2")).toBe("collabweb.h1a2b3.3f9c0a7e21b4@node2");
  });
});

describe("LogPrinter", () => {
  it("prefixes every whole line with its task", () => {
    expect(printer().push("1", Buffer.from("a\nb\n"))).toBe("web.1@node1       | a\nweb.1@node1       | b\n");
  });

  it("holds a task's unfinished line until its end, so tasks' lines do not mix", () => {
    const p = printer();
    expect(p.push("1", Buffer.from("hel"))).toBe("");
    expect(p.push("2", Buffer.from("other\n"))).toBe("web.2@node1       | other\n");
    expect(p.push("1", Buffer.from("lo\nwor"))).toBe("web.1@node1       | hello\n");
    expect(p.flush()).toBe("web.1@node1       | wor\n");
    expect(p.flush()).toBe("");
  });

  it("puts a character split between chunks back together", () => {
    const p = printer();
    const bytes = Buffer.from("héllo\n");
    expect(p.push("1", bytes.subarray(0, 2))).toBe("");
    expect(p.push("1", bytes.subarray(2))).toBe("web.1@node1       | héllo\n");
  });

  it("keeps empty lines", () => {
    expect(printer().push("1", Buffer.from("\n\nx\n"))).toBe("web.1@node1       | \nweb.1@node1       | \nweb.1@node1       | x\n");
  });
});

describe("LogPrinter with task logs' lines", () => {
  const T1 = "2025-01-02T03:04:05.000000001Z";
  const T2 = "2025-01-02T03:04:06.000000000Z";
  const log = Buffer.from(`${T1} o out\n${T2} e err\nraw\n`);

  it("prints each line's text, whichever its stream", () => {
    expect(printer().push("1", log)).toBe("web.1@node1       | out\nweb.1@node1       | err\nweb.1@node1       | raw\n");
  });

  it("puts the time a line was logged first with timestamps (a raw line has none)", () => {
    const p = new LogPrinter(() => "web.1", { timestamps: true });
    expect(p.push("1", log)).toBe(`${T1} web.1    | out\n${T2} web.1    | err\nweb.1    | raw\n`);
  });
});

describe("parseSinceFlag", () => {
  it("takes a duration before now, unix seconds or RFC 3339", () => {
    const now = new Date("2025-01-02T03:04:05.000Z");
    expect(parseSinceFlag("10m", now)).toBe("2025-01-02T02:54:05.000000000Z");
    expect(parseSinceFlag("1735787045", now)).toBe("2025-01-02T03:04:05.000000000Z");
    expect(parseSinceFlag("2025-01-02T03:04:05Z", now)).toBe("2025-01-02T03:04:05.000000000Z");
    expect(() => parseSinceFlag("soon")).toThrow(/duration/);
  });
});
