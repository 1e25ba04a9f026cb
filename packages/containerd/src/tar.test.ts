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

/** A 512-byte header of this type and size (the checksum recomputed), from one writeTar made. */
function rawHeader(typeflag: string, size: number): Buffer {
  const h = Buffer.from(writeTar([{ path: "PaxHeaders/x", mode: 0o644, content: Buffer.alloc(0) }]).subarray(0, 512));
  h.write(`${size.toString(8).padStart(11, "0")}\0`, 124);
  h.write(typeflag, 156);
  h.write("        ", 148);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return h;
}

describe("tar bounds", () => {
  it("refuses a PAX header claiming 8 GiB at once, without reading its body", async () => {
    let produced = 0;
    async function* crafted() {
      yield rawHeader("x", 8 * 1024 ** 3 - 1);
      // an endless body: a reader that believes the size would buffer it all
      for (; produced < 2048; produced++) yield Buffer.alloc(1 << 20, 0x41);
    }
    const started = Date.now();
    await expect(readTar(crafted(), async () => {})).rejects.toThrow("tar: a PAX header of 8589934591 bytes is over the 1024 KiB limit");
    expect(produced).toBeLessThan(4);
    expect(Date.now() - started).toBeLessThan(1000);
    await expect(readTar(Readable.from([rawHeader("L", (1 << 20) + 1)]), async () => {})).rejects.toThrow("GNU long-name header");
  });

  it("parses 16,000 empty files in well under a second, from big chunks", async () => {
    const files = Array.from({ length: 16_000 }, (_, i) => ({ path: `f${i}`, mode: 0o644, content: Buffer.alloc(0) }));
    const tar = writeTar(files);
    let n = 0;
    const started = Date.now();
    await readTar(Readable.from([tar]), async () => void n++);
    expect(n).toBe(16_000);
    expect(Date.now() - started).toBeLessThan(500);
  });
});
