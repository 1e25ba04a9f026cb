import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createServer } from "node:net";
import { openContainers, readJoinToken } from "./agent.ts";

describe("readJoinToken", () => {
  const dir = mkdtempSync(join(tmpdir(), "vipmesh-token-"));
  afterEach(() => rmSync(join(dir, "t"), { force: true }));
  const tokenFile = (text: string, mode: number) => {
    const file = join(dir, "t");
    writeFileSync(file, text);
    chmodSync(file, mode);
    return file;
  };

  it("reads a 0600 file, without its newline", () => {
    expect(readJoinToken(tokenFile("VMTKN-1-abc-def\n", 0o600))).toBe("VMTKN-1-abc-def");
  });

  it("refuses a file others can read, saying how to fix it", () => {
    const file = tokenFile("VMTKN-1-abc-def\n", 0o644);
    expect(() => readJoinToken(file)).toThrow(`the join token file ${file} can be read by others (mode 644): chmod 600 ${file}`);
  });

  it("refuses an empty file and a missing one", () => {
    expect(() => readJoinToken(tokenFile("\n", 0o600))).toThrow(/holds no join token/);
    expect(() => readJoinToken(join(dir, "missing"))).toThrow(/cannot read the join token from .*missing: ENOENT/);
  });
});

describe("openContainers", () => {
  const dir = mkdtempSync(join(tmpdir(), "vipmesh-containerd-"));
  const flags = (socket: string) => ({ containerdSocket: socket, containerdNamespace: "vipmesh", cgroupParent: "vipmesh-tasks" });
  const logs: string[] = [];

  it("without a socket: no containers, saying where it looked and what to do", async () => {
    const found = await openContainers(flags(join(dir, "none.sock")), (l) => logs.push(l), dir);
    expect(found).toEqual({ noContainers: `no containerd socket at ${join(dir, "none.sock")}: run containerd, or give the agent --containerd-socket` });
    expect(logs.at(-1)).toContain("containers: none");
  });

  it("with a socket that is not containerd's: no containers, saying it does not answer", async () => {
    const socket = join(dir, "other.sock");
    const server = createServer((c) => c.destroy()).listen(socket);
    try {
      const found = await openContainers(flags(socket), () => {}, dir);
      expect(found).toEqual({ noContainers: expect.stringContaining(`containerd at ${socket} does not answer: containerd is not running at ${socket}`) });
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 20_000);
});
