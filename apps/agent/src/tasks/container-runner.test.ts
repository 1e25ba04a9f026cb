import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { readLayerFile } from "./container-runner.ts";

describe("readLayerFile: an image's /etc/passwd read without trusting the image", () => {
  let layer = "";
  afterEach(() => rmSync(layer, { recursive: true, force: true }));
  const make = () => {
    layer = mkdtempSync(join(tmpdir(), "vm-layer-"));
    mkdirSync(join(layer, "etc"));
  };

  it("reads a regular file", () => {
    make();
    writeFileSync(join(layer, "etc", "passwd"), "app:x:1000:1000::/:/bin/sh\n");
    expect(readLayerFile(layer, "/etc/passwd")).toBe("app:x:1000:1000::/:/bin/sh\n");
    expect(readLayerFile(layer, "/etc/group")).toBeUndefined();
  });

  it("follows no symlink, to the file or on the way (the node's own files stay unread)", () => {
    make();
    const outside = join(layer, "..", `${layer.split("/").pop()}-outside`);
    mkdirSync(outside);
    try {
      writeFileSync(join(outside, "shadow"), "root:secret\n");
      symlinkSync(join(outside, "shadow"), join(layer, "etc", "passwd"));
      symlinkSync(outside, join(layer, "other"));
      expect(readLayerFile(layer, "/etc/passwd")).toBeUndefined();
      expect(readLayerFile(layer, "/other/shadow")).toBeUndefined();
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it("reads no FIFO (which would hang the agent) and no file past its size bound", () => {
    make();
    execFileSync("mkfifo", [join(layer, "etc", "passwd")]);
    expect(readLayerFile(layer, "/etc/passwd")).toBeUndefined();
    writeFileSync(join(layer, "etc", "group"), Buffer.alloc(2 * 1024 * 1024, "a"));
    expect(readLayerFile(layer, "/etc/group")).toBeUndefined();
  });
});
