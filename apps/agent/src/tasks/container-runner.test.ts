import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Containerd } from "@vipmesh/containerd";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ContainerRunner, readImageFile, TASK_LABEL } from "./container-runner.ts";
import { NotPrepared } from "./runtime.ts";

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
    expect(readImageFile([layer], "/etc/passwd")).toBe("app:x:1000:1000::/:/bin/sh\n");
    expect(readImageFile([layer], "/etc/group")).toBeUndefined();
  });

  it("follows no symlink, to the file or on the way (the node's own files stay unread)", () => {
    make();
    const outside = join(layer, "..", `${layer.split("/").pop()}-outside`);
    mkdirSync(outside);
    try {
      writeFileSync(join(outside, "shadow"), "root:secret\n");
      symlinkSync(join(outside, "shadow"), join(layer, "etc", "passwd"));
      symlinkSync(outside, join(layer, "other"));
      expect(readImageFile([layer], "/etc/passwd")).toBeUndefined();
      expect(readImageFile([layer], "/other/shadow")).toBeUndefined();
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it("reads no FIFO (which would hang the agent) and no file past its size bound", () => {
    make();
    execFileSync("mkfifo", [join(layer, "etc", "passwd")]);
    expect(readImageFile([layer], "/etc/passwd")).toBeUndefined();
    writeFileSync(join(layer, "etc", "group"), Buffer.alloc(2 * 1024 * 1024, "a"));
    expect(readImageFile([layer], "/etc/group")).toBeUndefined();
  });
});

/** The containerd calls the runner makes, in memory: images, containers with a task status, an events stream that can fail. */
class FakeContainerd {
  images = new Set<string>();
  pulls: string[] = [];
  pullFails: string | undefined;
  pullGate: Promise<void> = Promise.resolve();
  containerList: { id: string; status?: "created" | "running" | "stopped" }[] = [];
  deleted: string[] = [];
  /** When set, deleteContainer never answers (a hung containerd). */
  hangDelete = false;
  subscriptions: { onEvent: (e: { topic: string; event: object }) => void; onError?: (err: Error) => void; cancelled: boolean }[] = [];

  async image(ref: string) {
    return this.images.has(ref) ? { name: ref, digest: "sha256:1", mediaType: "m", size: 1, config: { entrypoint: [], cmd: ["sh"], env: [], workingDir: "", user: "", labels: {} }, chainId: "c", createdAt: "" } : undefined;
  }
  async pull(ref: string) {
    this.pulls.push(ref);
    await this.pullGate;
    if (this.pullFails) throw new Error(this.pullFails);
    this.images.add(ref);
  }
  async containers() {
    return this.containerList.map((c) => ({ id: c.id, image: "i", labels: { [TASK_LABEL]: c.id } }));
  }
  async task(id: string) {
    const c = this.containerList.find((x) => x.id === id);
    return c?.status ? { id, pid: 42, status: c.status } : undefined;
  }
  async deleteTask() {
    return undefined;
  }
  deleteContainer(id: string): Promise<void> {
    if (this.hangDelete) return new Promise(() => {});
    this.deleted.push(id);
    this.containerList = this.containerList.filter((c) => c.id !== id);
    return Promise.resolve();
  }
  async kill() {}
  wait(): Promise<{ exitStatus: number }> {
    return new Promise(() => {});
  }
  events(onEvent: (e: { topic: string; event: object }) => void, onError?: (err: Error) => void) {
    const s = { onEvent, ...(onError ? { onError } : {}), cancelled: false };
    this.subscriptions.push(s);
    return () => {
      s.cancelled = true;
    };
  }
}

describe("readImageFile: an image's layers as overlayfs shows them", () => {
  let root = "";
  afterEach(() => rmSync(root, { recursive: true, force: true }));
  const layers = (n: number) => {
    root = mkdtempSync(join(tmpdir(), "vm-layers-"));
    return Array.from({ length: n }, (_, i) => {
      const dir = join(root, `l${i}`);
      mkdirSync(join(dir, "etc"), { recursive: true });
      return dir;
    });
  };

  it("takes the top layer that has the file", () => {
    const [upper = "", lower = ""] = layers(2);
    writeFileSync(join(lower, "etc", "passwd"), "old\n");
    expect(readImageFile([upper, lower], "/etc/passwd")).toBe("old\n");
    writeFileSync(join(upper, "etc", "passwd"), "new\n");
    expect(readImageFile([upper, lower], "/etc/passwd")).toBe("new\n");
  });

  it("stops at a whiteout, a symlink or a non-file above: an older layer's file is not the image's", () => {
    const [upper = "", lower = ""] = layers(2);
    writeFileSync(join(lower, "etc", "passwd"), "old\n");
    writeFileSync(join(lower, "etc", "group"), "old\n");
    mkdirSync(join(lower, "conf"));
    writeFileSync(join(lower, "conf", "passwd"), "old\n");
    execFileSync("mknod", [join(upper, "etc", "passwd"), "c", "0", "0"]); // overlayfs's whiteout: removed in the upper layer
    symlinkSync("/etc/shadow", join(upper, "etc", "group"));
    writeFileSync(join(upper, "conf"), "a file where the directory was\n");
    expect(readImageFile([upper, lower], "/etc/passwd")).toBeUndefined();
    expect(readImageFile([upper, lower], "/etc/group")).toBeUndefined();
    expect(readImageFile([upper, lower], "/conf/passwd")).toBeUndefined();
  });
});

describe("ContainerRunner's lifecycle (a fake containerd)", () => {
  let state = "";
  let runner: ContainerRunner | undefined;
  const logs: string[] = [];
  afterEach(() => {
    runner?.close();
    runner = undefined;
    vi.useRealTimers();
    rmSync(state, { recursive: true, force: true });
  });
  const open = async (c: FakeContainerd) => {
    state = mkdtempSync(join(tmpdir(), "vm-runner-"));
    runner = await ContainerRunner.open({ containerd: c as unknown as Containerd, stateDir: state, stopGraceMs: 10, cgroupParent: "vmtest", log: (l) => logs.push(l) });
    return runner;
  };
  const task = (taskId: string, image = "web:1") => ({ taskId, container: { image, command: [], env: [] } });
  const settle = () => new Promise((r) => setTimeout(r, 10));

  it("a failed pull rejects every task waiting for it at once; only a later new task pulls again", async () => {
    const c = new FakeContainerd();
    c.pullFails = "no registry";
    let release = () => {};
    c.pullGate = new Promise((r) => (release = r));
    const r = await open(c);
    const told: string[] = [];
    for (const id of ["t1", "t2", "t3"]) expect(r.prepare(task(id), () => told.push(id)).state).toBe("preparing");
    for (let i = 0; i < 5; i++) r.prepare(task("t1"), () => told.push("t1")); // asked again each pass: still one waiter
    release();
    await settle();
    expect(told.filter((t) => t === "t1").length).toBeLessThanOrEqual(2);
    for (const id of ["t1", "t2", "t3"]) expect(r.prepare(task(id), () => {})).toMatchObject({ state: "failed", error: expect.stringContaining("no registry") });
    expect(c.pulls).toEqual(["docker.io/library/web:1"]);
    c.pullFails = undefined;
    expect(r.prepare(task("t4"), () => {}).state).toBe("preparing");
    await settle();
    expect(c.pulls).toEqual(["docker.io/library/web:1", "docker.io/library/web:1"]);
    expect(r.prepare(task("t4"), () => {}).state).toBe("ready");
  });

  it("an image removed after it was found sends the task back to preparing, not to failure", async () => {
    const c = new FakeContainerd();
    c.images.add("docker.io/library/web:1");
    const r = await open(c);
    expect(r.prepare(task("t1"), () => {}).state).toBe("preparing");
    await settle();
    expect(r.prepare(task("t1"), () => {}).state).toBe("ready");
    c.images.clear(); // image GC, or image rm --force
    const start = r.start({ ...task("t1"), serviceName: "s", sandbox: "sb", hostname: "t1", command: [], env: [], confinement: { user: "", capabilities: [], pids: 10, memoryBytes: 0, nanoCpus: 0 } });
    await expect(start).rejects.toBeInstanceOf(NotPrepared);
    expect(r.prepare(task("t1"), () => {}).state).toBe("preparing"); // looked for (and pulled) again
    await settle();
    expect(c.pulls).toEqual(["docker.io/library/web:1"]);
    expect(r.prepare(task("t1"), () => {}).state).toBe("ready");
  });

  it("a container whose task was created but never started is removed and reported lost, not adopted", async () => {
    const c = new FakeContainerd();
    c.containerList = [
      { id: "run1", status: "running" },
      { id: "made1", status: "created" },
    ];
    const r = await open(c);
    expect(r.adopt()).toEqual({ adopted: ["run1"], lost: ["made1"] });
    expect(c.deleted).toEqual(["made1"]);
    expect(r.isRunning("made1")).toBe(false);
  });

  it("subscribes to containerd's events again after the stream fails, backing off", async () => {
    vi.useFakeTimers();
    const c = new FakeContainerd();
    const r = await open(c);
    expect(c.subscriptions.length).toBe(1);
    c.subscriptions[0]?.onError?.(new Error("containerd restarted"));
    await vi.advanceTimersByTimeAsync(600);
    expect(c.subscriptions.length).toBe(2);
    c.subscriptions[1]?.onError?.(new Error("still down"));
    await vi.advanceTimersByTimeAsync(600);
    expect(c.subscriptions.length).toBe(2); // the second wait is longer
    await vi.advanceTimersByTimeAsync(600);
    expect(c.subscriptions.length).toBe(3);
    r.close();
    c.subscriptions[2]?.onError?.(new Error("closed"));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(c.subscriptions.length).toBe(3);
  });

  it("stop and forget do not wait on a containerd that never answers: the container stays known for the next pass", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const c = new FakeContainerd();
    c.containerList = [{ id: "run1", status: "running" }];
    const r = await open(c);
    r.adopt();
    c.hangDelete = true;
    const stopped = r.stop("run1");
    await vi.advanceTimersByTimeAsync(120_000);
    await stopped; // resolved, though containerd never answered
    r.forget("run1");
    await vi.advanceTimersByTimeAsync(120_000);
    expect(r.known()).toEqual(["run1"]); // left for the reconciler's next pass
    expect(logs.some((l) => l.includes("did not remove it"))).toBe(true);
    c.hangDelete = false;
    await r.stop("run1");
    r.forget("run1");
    await vi.advanceTimersByTimeAsync(10);
    expect(r.known()).toEqual([]);
  });
});
