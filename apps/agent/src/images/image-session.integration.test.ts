// An image load end to end: a LoadImage call to a real manager, relayed over
// a real agent session (ManagerSession) into NodeImages on a private
// containerd, in small pieces so that the window and the acknowledgements
// turn over many times; then ls and rm through the manager, and a load the
// caller abandons midway leaves no image and, once containerd's GC ran, no content.

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import type * as grpc from "@grpc/grpc-js";
import { call, type ClusterServiceClient, clusterClient, credentialsFromDir, NodeIdentity, type wire } from "@vipmesh/api";
import { buildImageArchive, Containerd, type ContainerdDaemon, startContainerd } from "@vipmesh/containerd";
import { type RunningManager, startManager } from "@vipmesh/manager";
import { waitFor } from "@vipmesh/testing";
import { containerdDescribe } from "@vipmesh/testing/kernel";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ManagerSession } from "../session/session.ts";
import { NodeImages } from "./node-images.ts";

const id = `vmims${randomBytes(3).toString("hex")}`;
const dir = `/tmp/${id}`;
const netns = `${id}-cd`;
const PIECE = 64 * 1024;

/** An image of about 6 MiB (more than the manager's window) that compresses to nothing like it. */
const bigArchive = (name: string) =>
  buildImageArchive({
    name,
    format: "oci",
    files: [{ path: "blob", mode: 0o644, content: randomBytes(6 * 1024 * 1024) }],
    config: { cmd: ["/blob"] },
  });

/** A LoadImage call that sends `tar` in PIECE-sized chunks, waiting for drain; `last` unless told to stop after `upTo` bytes. */
function load(client: ClusterServiceClient, tar: Buffer, upTo = tar.length) {
  let stream!: grpc.ClientWritableStream<wire.LoadImageChunk>;
  const answer = new Promise<wire.LoadImageResponse>((resolve, reject) => {
    stream = client.loadImage((err, res) => (err ? reject(err) : resolve(res!)));
  });
  const sent = (async () => {
    for (let at = 0; at < upTo; at += PIECE) {
      if (!stream.write({ data: tar.subarray(at, Math.min(at + PIECE, upTo)) })) await new Promise((r) => stream.once("drain", r));
    }
    if (upTo === tar.length) stream.end({ data: Buffer.alloc(0), last: true });
  })();
  return { stream, answer, sent };
}

containerdDescribe("image load over a real agent session", () => {
  let daemon: ContainerdDaemon;
  let containerd: Containerd;
  let manager: RunningManager;
  let client: ClusterServiceClient;
  let session: ManagerSession;
  let images: NodeImages;
  const ctr = (...args: string[]) => execFileSync("ctr", ["-a", daemon.socket, "-n", "vipmesh-test", ...args], { encoding: "utf8" });

  beforeAll(async () => {
    if (!existsSync("/usr/bin/containerd")) throw new Error("containerd is not installed (apt-get install containerd runc)");
    mkdirSync(`${dir}/state`, { recursive: true });
    execFileSync("ip", ["netns", "add", netns]);
    daemon = await startContainerd({ dir: `${dir}/containerd`, netns, log: `${dir}/containerd.log` });
    containerd = await Containerd.connect({ socket: daemon.socket, namespace: "vipmesh-test" });
    manager = await startManager({ dataDir: `${dir}/manager`, listen: ["127.0.0.1:0"] });
    const address = manager.addresses[0]!;
    client = clusterClient(address, credentialsFromDir(manager.adminTlsDir!));
    const token = (await call(client, "getJoinToken", { role: "worker" })).token;
    const identity = await NodeIdentity.obtain({ manager: address, token });
    session = new ManagerSession({
      managers: [address],
      credentials: { identity: identity.source },
      nodeId: identity.nodeId,
      hostname: "node-1",
      advertiseAddr: "192.0.2.51",
      stateDir: `${dir}/state`,
      runtimes: ["process", "container"],
      log: () => {},
    });
    images = new NodeImages({ store: containerd, stateDir: `${dir}/state`, users: () => [], log: () => {} });
    session.serveImages(images);
    session.start();
    await waitFor("node-1 ready", async () => (await call(client, "listNodes", {})).nodes.find((n) => n.status?.state === "ready"));
  }, 60_000);
  afterAll(async () => {
    session?.stop();
    client?.close();
    await manager?.stop();
    containerd?.close();
    await daemon?.stop();
    execFileSync("ip", ["netns", "del", netns], { stdio: "ignore" });
    rmSync(dir, { recursive: true, force: true });
  });

  it("loads a tarball sent in small pieces, lists it and removes it through the manager", async () => {
    const tar = bigArchive("big:1");
    const l = load(client, tar);
    const res = await l.answer;
    expect(res.nodes.map((n) => [n.hostname, n.images, n.error])).toEqual([["node-1", ["docker.io/library/big:1"], ""]]);
    expect(ctr("images", "ls", "-q").trim()).toBe("docker.io/library/big:1");
    const [listed] = (await call(client, "listImages", {})).nodes;
    expect(listed?.images.map((i) => [i.name, i.mediaType, i.size > 6 * 1024 * 1024])).toEqual([
      ["docker.io/library/big:1", "application/vnd.oci.image.manifest.v1+json", true],
    ]);
    const removed = await call(client, "removeImage", { image: "big:1", nodes: [], force: false });
    expect(removed.nodes.map((n) => n.images)).toEqual([["docker.io/library/big:1"]]);
    expect(ctr("images", "ls", "-q").trim()).toBe("");
  });

  it("a load abandoned midway leaves no image and no content", async () => {
    const tar = bigArchive("half:1");
    const l = load(client, tar, 3 * 1024 * 1024);
    await l.sent;
    l.stream.cancel();
    await expect(l.answer).rejects.toMatchObject({ code: 1 }); // CANCELLED
    expect(ctr("images", "ls", "-q").trim()).toBe("");
    await waitFor("containerd's GC dropped the partial content", () => (ctr("content", "ls", "-q").trim() === "" ? true : undefined), 15_000);
  });
});
