import { describe, expect, it } from "vitest";
import { formatTaskLogLine, isSince, logTime, parseTaskLogBytes, parseTaskLogLine, sinceTime } from "./task-log.ts";

const T = "2024-05-01T12:00:00.123456789Z";

describe("parseTaskLogLine", () => {
  it("reads the time, the stream and the text of a line as confine writes it", () => {
    expect(parseTaskLogLine(`${T} o hello world\n`)).toEqual({ time: T, stream: "stdout", text: "hello world" });
    expect(parseTaskLogLine(`${T} e oops`)).toEqual({ time: T, stream: "stderr", text: "oops" });
    expect(parseTaskLogLine(`${T} o \n`)).toEqual({ time: T, stream: "stdout", text: "" });
  });

  it("takes any other line as raw stdout without a time", () => {
    for (const raw of ["hello\n", "vipmesh-confine: cannot run x: No such file or directory", "", `${T} x hi`, `${T}o hi`, `2024-05-01T12:00:00.123Z o hi`]) {
      expect(parseTaskLogLine(raw)).toEqual({ time: "", stream: "stdout", text: raw.replace(/\n$/, "") });
    }
  });

  it("round-trips what formatTaskLogLine writes", () => {
    expect(parseTaskLogLine(formatTaskLogLine(T, "stderr", "a b"))).toEqual({ time: T, stream: "stderr", text: "a b" });
  });

  it("keeps bytes as bytes", () => {
    const line = Buffer.concat([Buffer.from(`${T} e `), Buffer.from([0xff, 0xfe]), Buffer.from("\n")]);
    const parsed = parseTaskLogBytes(line);
    expect(parsed.stream).toBe("stderr");
    expect(parsed.text).toEqual(Buffer.from([0xff, 0xfe]));
    expect(parseTaskLogBytes(Buffer.from("raw\n")).text.toString()).toBe("raw");
  });
});

describe("since", () => {
  it("reads Docker's unix seconds with a fraction, and RFC 3339, in the log's time form", () => {
    expect(sinceTime("1714564800.123456789")).toBe("2024-05-01T12:00:00.123456789Z");
    expect(sinceTime("1714564800")).toBe("2024-05-01T12:00:00.000000000Z");
    expect(sinceTime("1714564800.5")).toBe("2024-05-01T12:00:00.500000000Z");
    expect(sinceTime("2024-05-01T14:00:00+02:00")).toBe("2024-05-01T12:00:00.000000000Z");
    expect(sinceTime(T)).toBe(T);
    expect(sinceTime("")).toBe("");
    expect(sinceTime("0")).toBe("");
    expect(sinceTime("yesterday")).toBeUndefined();
  });

  it("keeps lines at or after since, drops older and raw ones", () => {
    const since = sinceTime("1714564800.123456789")!;
    expect(isSince(parseTaskLogLine(`${T} o x`), since)).toBe(true);
    expect(isSince(parseTaskLogLine(`2024-05-01T12:00:00.123456788Z o x`), since)).toBe(false);
    expect(isSince(parseTaskLogLine("raw"), since)).toBe(false);
    expect(isSince(parseTaskLogLine("raw"), "")).toBe(true);
  });

  it("writes a Date with extra nanoseconds", () => {
    expect(logTime(new Date(Date.UTC(2024, 4, 1, 12, 0, 0, 123)), 456789)).toBe(T);
  });
});
