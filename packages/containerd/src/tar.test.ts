import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { type TarEntry, readTar, writeTar } from "./tar.ts";

async function entries(tar: Buffer, chunk = 100): Promise<(TarEntry & { body: string })[]> {
  const pieces: Buffer[] = [];
  for (let at = 0; at < tar.length; at += chunk) pieces.push(tar.subarray(at, at + chunk));
  const out: (TarEntry & { body: string })[] = [];
  await readTar(Readable.from(pieces), async (e, body) => {
    const parts: Buffer[] = [];
    if (e.path !== "skipped") await body((c) => void parts.push(Buffer.from(c)));
    out.push({ ...e, body: Buffer.concat(parts).toString() });
  });
  return out;
}

describe("tar", () => {
  it("reads back what it writes, in odd-sized chunks, skipping unread bodies", async () => {
    const long = `${"d".repeat(120)}/file`;
    const tar = writeTar([
      { path: "bin", mode: 0o755, dir: true },
      { path: "bin/sh", mode: 0o777, symlink: "busybox" },
      { path: "skipped", mode: 0o644, content: Buffer.alloc(1000, 1) },
      { path: "/etc/hosts", mode: 0o600, content: Buffer.from("127.0.0.1 localhost\n") },
      { path: long, mode: 0o644, content: Buffer.from("x".repeat(513)) },
    ]);
    expect(tar.length % 512).toBe(0);
    const got = await entries(tar, 77);
    expect(got.map((e) => [e.path, e.type, e.mode, e.linkname, e.body.length])).toEqual([
      ["bin/", "dir", 0o755, "", 0],
      ["bin/sh", "symlink", 0o777, "busybox", 0],
      ["skipped", "file", 0o644, "", 0],
      ["etc/hosts", "file", 0o600, "", 20],
      [long, "file", 0o644, "", 513],
    ]);
    expect(got[3]?.body).toBe("127.0.0.1 localhost\n");
  });

  it("refuses what is not a tar", async () => {
    await expect(entries(Buffer.alloc(512, 7))).rejects.toThrow("bad header checksum");
    await expect(entries(Buffer.alloc(0))).rejects.toThrow("the archive is empty");
    const tar = writeTar([{ path: "a", mode: 0o644, content: Buffer.alloc(2000) }]);
    await expect(entries(tar.subarray(0, 1024))).rejects.toThrow("ends inside an entry");
  });

  it("refuses a path it cannot store", () => {
    expect(() => writeTar([{ path: "x".repeat(101), mode: 0o644, content: Buffer.alloc(0) }])).toThrow("path too long");
  });
});
