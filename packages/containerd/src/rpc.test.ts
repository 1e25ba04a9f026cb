import { createServer } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { afterAll, describe, expect, it } from "vitest";
import { Containerd, taskInfoOf } from "./client.ts";
import { type ErrorCode, Rpc, isCode } from "./rpc.ts";

describe("containerd calls are bounded", () => {
  const dir = mkdtempSync(`${tmpdir()}/vipmesh-rpc-`);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("a unary call to a containerd that never answers fails with a timeout", async () => {
    // a socket that accepts and then says nothing: a hung containerd
    const sock = `${dir}/hung.sock`;
    const held: import("node:net").Socket[] = [];
    const server = createServer((s) => void held.push(s));
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    const rpc = new Rpc(sock, "ns", 200);
    try {
      const started = Date.now();
      const err = await rpc.unary("version", "Version", "Version", {}).catch((e: unknown) => e);
      expect(isCode(err, "timeout")).toBe(true);
      expect((err as Error).message).toBe("containerd Version.Version: no answer within 200 ms");
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      rpc.close();
      for (const s of held) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("deleteContainer gives up waitMs after its SIGKILL when the task does not exit, and cancels its Wait", async () => {
    const calls: string[] = [];
    let waitCancelled = false;
    const rpc = {
      unary(_pkg: string, service: string, name: string, _req: object, o: { signal?: AbortSignal; timeoutMs?: number } = {}) {
        calls.push(`${service}.${name}`);
        if (name === "Get") return Promise.resolve({ process: { id: "web", pid: 42, status: "RUNNING", exitStatus: 0 } });
        if (name === "Wait") {
          expect(o.timeoutMs).toBe(Number.POSITIVE_INFINITY); // Wait has no deadline of its own
          return new Promise((_resolve, reject) =>
            o.signal?.addEventListener("abort", () => {
              waitCancelled = true;
              reject(new Error("cancelled"));
            }),
          );
        }
        return Promise.resolve({});
      },
    };
    const cd = new (Containerd as unknown as new (rpc: unknown) => Containerd)(rpc);
    const started = Date.now();
    const err = await cd.deleteContainer("web", { waitMs: 150 }).catch((e: unknown) => e);
    expect((err as Error).message).toBe("container web did not exit within 150 ms of its SIGKILL: left for a later try");
    expect((err as { code: ErrorCode }).code).toBe("timeout");
    expect(Date.now() - started).toBeLessThan(1000);
    expect(calls).toEqual(["Tasks.Get", "Tasks.Wait", "Tasks.Kill"]); // the task, record and snapshot are left for the next try
    expect(waitCancelled).toBe(true);
  });
});

describe("task status", () => {
  it("maps containerd's process status once, for Tasks.Get and Tasks.List", () => {
    expect(taskInfoOf("a", { pid: 7, status: "RUNNING", exitStatus: 0 })).toEqual({ id: "a", pid: 7, status: "running" });
    expect(taskInfoOf("a", { pid: 7, status: "STOPPED", exitStatus: 137 })).toEqual({ id: "a", pid: 7, status: "stopped", exitStatus: 137 });
    expect(taskInfoOf("a", { pid: 0, status: "CREATED", exitStatus: 0 }).status).toBe("created");
    expect(taskInfoOf("a", { pid: 0, status: "PAUSING", exitStatus: 0 }).status).toBe("unknown");
  });
});
