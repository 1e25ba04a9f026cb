import { EventEmitter } from "node:events";
import { Readable } from "node:stream";
import { expect, test } from "vitest";
import { humanSize, imageRows, shortDigest, streamLoad } from "./image.ts";

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

/** A LoadImage call whose window is full at once (write says wait, no drain comes) and that the manager answers with `refusal`. */
function refusingClient(refusal: Error) {
  const sent: unknown[] = [];
  let cancelled = false;
  const client = {
    loadImage(callback: (err: Error | null) => void) {
      const stream = Object.assign(new EventEmitter(), {
        write: (m: unknown) => {
          sent.push(m);
          setImmediate(() => callback(refusal));
          return false;
        },
        end: (m: unknown) => sent.push(m),
        cancel: () => {
          cancelled = true;
        },
      });
      return stream;
    },
  };
  return { client: client as unknown as Parameters<typeof streamLoad>[0], sent, cancelled: () => cancelled };
}

test("load: a refusal while the tarball is still sent is the manager's answer, not a read failure; the rest is not sent", async () => {
  const refusal = Object.assign(new Error("9 FAILED_PRECONDITION: no ready node has the container runtime"), { code: 9 });
  const { client, sent } = refusingClient(refusal);
  const source = Readable.from([Buffer.alloc(10, 1), Buffer.alloc(10, 2), Buffer.alloc(10, 3)]);
  await expect(streamLoad(client, source, [])).rejects.toBe(refusal);
  expect(sent).toHaveLength(1);
});

test("load: a tarball that cannot be read says so", async () => {
  const { client, cancelled } = refusingClient(new Error("unused"));
  const source = new Readable({ read() { this.destroy(new Error("EIO: i/o error, read")); } });
  await expect(streamLoad(client, source, [])).rejects.toThrow(/^cannot read the image tarball: EIO: i\/o error, read$/);
  expect(cancelled()).toBe(true);
});
