import { describe, expect, it } from "vitest";
import { formatTable, humanDuration, shortId, stateSince, titleCase } from "./table.ts";

describe("formatTable", () => {
  it("pads every column but the last to its widest cell", () => {
    const text = formatTable(
      ["ID", "NAME", "PORTS"],
      [
        ["abc", "collabweb", "*:30000->80/tcp"],
        ["defghi", "db", ""],
      ],
    );
    expect(text).toBe(
      "ID       NAME        PORTS\n" + //
        "abc      collabweb   *:30000->80/tcp\n" +
        "defghi   db\n",
    );
  });

  it("prints only the header for no rows", () => {
    expect(formatTable(["ID", "NAME"], [])).toBe("ID   NAME\n");
  });
});

describe("cells", () => {
  it("shortens IDs to 12 characters", () => {
    expect(shortId("0123456789abcdefghij")).toBe("0123456789ab");
    expect(shortId("abc")).toBe("abc");
  });

  it("title-cases states", () => {
    expect(titleCase("running")).toBe("Running");
    expect(titleCase("")).toBe("");
  });

  it("describes ages like docker", () => {
    expect(humanDuration(300)).toBe("Less than a second");
    expect(humanDuration(1000)).toBe("1 second");
    expect(humanDuration(42_000)).toBe("42 seconds");
    expect(humanDuration(70_000)).toBe("About a minute");
    expect(humanDuration(10 * 60_000)).toBe("10 minutes");
    expect(humanDuration(65 * 60_000)).toBe("About an hour");
    expect(humanDuration(5 * 3_600_000)).toBe("5 hours");
    expect(humanDuration(72 * 3_600_000)).toBe("3 days");
  });

  it("writes a task's current state with its age", () => {
    const now = new Date("2025-01-01T00:01:00Z");
    expect(stateSince("running", "2025-01-01T00:00:57Z", now)).toBe("Running 3 seconds ago");
    expect(stateSince("pending", "", now)).toBe("Pending");
  });
});
