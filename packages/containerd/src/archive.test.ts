import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { stageArchive } from "./archive.ts";
import type { Rpc } from "./rpc.ts";
import { writeTar } from "./tar.ts";

// No containerd here: an entry that would be streamed into the content store reaches this and fails.
const noStore = {
  duplex() {
    throw new Error("streamed to the content store");
  },
} as unknown as Rpc;

describe("stageArchive bounds", () => {
  it("skips unread the files no plan can name, and holds 16,000 empty JSON files at once", async () => {
    const junk = Array.from({ length: 16_000 }, (_, i) => ({ path: `junk/f${i}`, mode: 0o644, content: Buffer.alloc(0) }));
    const json = Array.from({ length: 16_000 }, (_, i) => ({ path: `c${i}.json`, mode: 0o644, content: Buffer.alloc(0) }));
    const started = Date.now();
    const entries = await stageArchive(Readable.from([writeTar([...junk, ...json])]), noStore, "lease");
    expect(Date.now() - started).toBeLessThan(1000);
    expect(entries.size).toBe(16_000);
    expect(entries.has("junk/f1")).toBe(false);
  });

  it("keeps JSON in memory only up to 16 MiB in all: past it, entries stream", async () => {
    const files = Array.from({ length: 15 }, (_, i) => ({ path: `c${i}.json`, mode: 0o644, content: Buffer.alloc(1 << 20, 0x20) }));
    const entries = await stageArchive(Readable.from([writeTar(files)]), noStore, "lease");
    expect([...entries.values()].every((e) => e.data?.length === 1 << 20)).toBe(true);
    const more = [...files, { path: "c15.json", mode: 0o644, content: Buffer.alloc(1 << 20) }, { path: "c16.json", mode: 0o644, content: Buffer.from("{}") }];
    await expect(stageArchive(Readable.from([writeTar(more)]), noStore, "lease")).rejects.toThrow("streamed to the content store");
  });
});
