// The node's images against a real, private containerd (its own dir, socket
// and network namespace): tarballs built here loaded, listed with the tasks
// that use them, removed (refused while in use), collected after the GC period
// (kept while in use, the clock surviving a restart), a bad tarball refused
// with nothing left behind. Read back with ctr. Root only; CI fails instead of skipping.

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { Readable } from "node:stream";
import { buildImageArchive, Containerd, type ContainerdDaemon, startContainerd } from "@vipmesh/containerd";
import { containerdDescribe } from "@vipmesh/testing/kernel";
import { afterAll, beforeAll, beforeEach, expect, it } from "vitest";
import { LAST_USE_FILE } from "./last-use.ts";
import { type ImageUser, NodeImages } from "./node-images.ts";

const GC_AFTER_MS = 60_000;
const id = `vmimg${randomBytes(3).toString("hex")}`;
const dir = `/tmp/${id}`;
const netns = `${id}-cd`;

/** A one-file image tarball: each name gets content of its own, so a digest of its own. */
const archive = (name: string, format: "docker-archive" | "oci" = "docker-archive") =>
  buildImageArchive({
    name,
    format,
    files: [
      { path: "etc", mode: 0o755, dir: true },
      { path: "etc/image-name", mode: 0o644, content: Buffer.from(`${name}\n`) },
    ],
    config: { cmd: ["/bin/true"] },
  });

containerdDescribe("node images on a private containerd", () => {
  let daemon: ContainerdDaemon;
  let containerd: Containerd;
  let stateDir: string;
  let users: ImageUser[] | undefined;
  let now: number;
  let logged: string[];
  const images = () =>
    new NodeImages({ store: containerd, stateDir, gcAfterMs: GC_AFTER_MS, users: () => users, log: (l) => logged.push(l), now: () => now });
  /** Image names as ctr lists them in the namespace. */
  const ctrImages = () =>
    execFileSync("ctr", ["-a", daemon.socket, "-n", "vipmesh-test", "images", "ls", "-q"], { encoding: "utf8" }).split("\n").filter(Boolean).sort();
  const load = (nodeImages: NodeImages, name: string, format?: "docker-archive" | "oci") => nodeImages.load(Readable.from([archive(name, format)]));

  beforeAll(async () => {
    if (!existsSync("/usr/bin/containerd")) throw new Error("containerd is not installed (apt-get install containerd runc)");
    mkdirSync(dir, { recursive: true });
    execFileSync("ip", ["netns", "add", netns]);
    daemon = await startContainerd({ dir: `${dir}/containerd`, netns, log: `${dir}/containerd.log` });
    containerd = await Containerd.connect({ socket: daemon.socket, namespace: "vipmesh-test" });
  }, 60_000);
  afterAll(async () => {
    containerd?.close();
    await daemon?.stop();
    execFileSync("ip", ["netns", "del", netns], { stdio: "ignore" });
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    for (const r of await containerd.images()) await containerd.removeImage(r.name);
    stateDir = `${dir}/state-${randomBytes(3).toString("hex")}`;
    mkdirSync(stateDir);
    users = [];
    now = Date.parse("2026-01-01T00:00:00Z");
    logged = [];
  });

  it("loads docker-archive and OCI tarballs and lists them with the tasks that use them", async () => {
    const n = images();
    expect(await load(n, "web:1")).toEqual(["docker.io/library/web:1"]);
    expect(await load(n, "registry.local:5000/team/api:2", "oci")).toEqual(["registry.local:5000/team/api:2"]);
    users = [{ task: "web.1", image: "web:1" }];
    const listed = await n.list();
    expect(listed.map((i) => [i.name, i.tasks])).toEqual([
      ["docker.io/library/web:1", ["web.1"]],
      ["registry.local:5000/team/api:2", []],
    ]);
    for (const i of listed) {
      expect(i.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(i.size).toBeGreaterThan(0);
      expect(i.mediaType).toMatch(/manifest/);
      expect(i.lastUsed).toBe(new Date(now).toISOString());
    }
    expect(ctrImages()).toEqual(["docker.io/library/web:1", "registry.local:5000/team/api:2"]);
    // a task pinned to the digest uses the image as much as one naming it
    users = [{ task: "api.3", image: `registry.local:5000/team/api:2@${listed[1]!.digest}` }];
    expect((await n.list()).map((i) => i.tasks)).toEqual([[], ["api.3"]]);
  });

  it("refuses to remove an image a task uses, naming the task; forced, or unused, it goes", async () => {
    const n = images();
    await load(n, "web:1");
    await load(n, "old:1");
    users = [{ task: "web.2", image: "docker.io/library/web:1" }];
    await expect(n.remove("web:1")).rejects.toMatchObject({ code: "failed_precondition", message: expect.stringMatching(/^image web:1 is in use by task web\.2 /) });
    expect(await n.remove("old:1", { check: true })).toEqual([]);
    expect(ctrImages()).toEqual(["docker.io/library/old:1", "docker.io/library/web:1"]); // nothing removed so far
    expect(await n.remove("old:1")).toEqual(["docker.io/library/old:1"]);
    expect(await n.remove("web:1", { force: true })).toEqual(["docker.io/library/web:1"]);
    expect(ctrImages()).toEqual([]);
    await expect(n.remove("web:1")).rejects.toMatchObject({ code: "not_found", message: "No such image: web:1" });
    await expect(n.remove("Not A Name")).rejects.toThrow(/invalid image reference "Not A Name"/);
  });

  it("collects images unused for the period, never one in use, and its clock survives a restart", async () => {
    const n = images();
    await load(n, "idle:1");
    await load(n, "busy:1");
    users = [{ task: "busy.1", image: "busy:1" }];
    now += GC_AFTER_MS - 1;
    expect(await n.collect()).toEqual([]);
    now += 1;
    expect(await n.collect()).toEqual(["docker.io/library/idle:1"]);
    expect(ctrImages()).toEqual(["docker.io/library/busy:1"]);
    expect(logged.join("\n")).toMatch(/image GC: removed docker\.io\/library\/idle:1 \(sha256:[0-9a-f]{64}\), unused for 60 s/);

    // the task goes: the image was last used at the last pass that saw it in use
    users = [];
    const lastSeenInUse = now;
    await load(n, "kept:1");
    now = lastSeenInUse + GC_AFTER_MS / 2;
    // a restarted agent reads the last uses back: busy:1's clock did not start again
    const restarted = images();
    expect(JSON.parse(readFileSync(`${stateDir}/${LAST_USE_FILE}`, "utf8"))).toEqual({
      "docker.io/library/busy:1": lastSeenInUse,
      "docker.io/library/kept:1": lastSeenInUse,
    });
    now = lastSeenInUse + GC_AFTER_MS;
    expect((await restarted.collect()).sort()).toEqual(["docker.io/library/busy:1", "docker.io/library/kept:1"]);
    expect(ctrImages()).toEqual([]);
  });

  it("an image it never saw (pulled for a task) gets a full period from when it is first seen", async () => {
    await containerd.importArchive(Readable.from([archive("pulled:1")]));
    const n = images();
    expect(await n.collect()).toEqual([]);
    now += GC_AFTER_MS;
    expect(await n.collect()).toEqual(["docker.io/library/pulled:1"]);
  });

  it("neither collects nor removes before the agent knows its tasks", async () => {
    const n = images();
    await load(n, "early:1");
    users = undefined;
    now += 2 * GC_AFTER_MS;
    expect(await n.collect()).toEqual([]);
    await expect(n.remove("early:1")).rejects.toMatchObject({ code: "unavailable", message: expect.stringMatching(/does not know its tasks yet/) });
    users = [];
    expect(await n.collect()).toEqual(["docker.io/library/early:1"]);
  });

  it("refuses a corrupt tarball saying what is wrong, and leaves no image", async () => {
    const n = images();
    const good = archive("half:1");
    await expect(n.load(Readable.from([good.subarray(0, good.length / 2)]))).rejects.toThrow("tar: archive ends inside an entry");
    await expect(n.load(Readable.from([Buffer.from("this is not a tar archive at all")]))).rejects.toThrow("tar: the archive is truncated");
    expect(ctrImages()).toEqual([]);
    expect(await n.list()).toEqual([]);
  });
});
