import { expect, test } from "vitest";
import { humanSize, imageRows, shortDigest } from "./image.ts";

test("sizes as docker prints them: decimal units, three significant digits", () => {
  expect([0, 999, 1000, 1234, 2_097_275, 5_000_000_000].map(humanSize)).toEqual(["0B", "999B", "1kB", "1.23kB", "2.1MB", "5GB"]);
});

test("rows: a node's images, digest cut to 12 hex digits, the tasks that use each", () => {
  const digest = `sha256:${"0123456789abcdef".repeat(4)}`;
  expect(shortDigest(digest)).toBe("sha256:0123456789ab");
  const image = { name: "docker.io/library/web:1", digest, size: 1500, createdAt: "", tasks: ["web.1", "web.2"], mediaType: "", os: "", architecture: "", lastUsed: "" };
  expect(imageRows([{ nodeId: "n1", hostname: "node-1", images: [image], error: "" }])).toEqual([
    ["node-1", "docker.io/library/web:1", "sha256:0123456789ab", "1.5kB", "web.1, web.2"],
  ]);
});
