// Images across the cluster through a real manager and simulated agents: a
// load's chunks relayed to every target node in order with a bounded window,
// per-node answers (a node without the runtime, a bad tarball, a lost node),
// ls with the tasks that use an image, rm refused while in use (on no node at
// all), the read-only identity, the docker CLI pinning a loaded image's
// digest through /distribution, and a stuck node answered for after a timeout
// (ls, rm, /distribution, a load's pieces and its end) while the others go on.

import type * as grpc from "@grpc/grpc-js";
import { type ClusterServiceClient, clusterClient, credentialsFromDir, type wire } from "@vipmesh/api";
import { dockerOk, type SimAgent, simImage } from "@vipmesh/testing";
import { afterEach, describe, expect, it } from "vitest";
import { IMAGE_TIMEOUTS, LOAD_WINDOW_BYTES } from "../src/image-relay.ts";
import { call, failure, type Harness, serviceSpec, startHarness, waitFor, waitRunning } from "./harness.ts";

const MiB = 1024 * 1024;
let h: Harness;
const timeouts = { ...IMAGE_TIMEOUTS };
afterEach(async () => {
  Object.assign(IMAGE_TIMEOUTS, timeouts);
  await h?.close();
});

/** A tarball stand-in: the SimAgents load whatever the test says it holds. */
const holds = (names: string[]) => (tar: Buffer) => (tar.toString().startsWith("bad") ? new Error("not a tar archive: bad header at byte 0") : names);

async function cluster() {
  h = await startHarness();
  const a = await h.addAgent("node1", { loadImage: holds(["docker.io/library/web:1"]) });
  const b = await h.addAgent("node2", { loadImage: holds(["docker.io/library/web:1"]) });
  const c = await h.addAgent("node3", { runtimes: ["process"] });
  return { a, b, c };
}

/** A LoadImage call: the chunks given, then the end; resolves with its answer or failure. */
function load(client: ClusterServiceClient, nodes: string[], chunks: Buffer[]) {
  let stream!: grpc.ClientWritableStream<wire.LoadImageChunk>;
  const answer = new Promise<wire.LoadImageResponse>((resolve, reject) => {
    stream = client.loadImage((err, res) => (err ? reject(err) : resolve(res!)));
  });
  stream.write({ nodes, data: Buffer.alloc(0) });
  for (const data of chunks) stream.write({ data });
  /** Sends the last chunk (the load is complete) and half-closes. */
  const finish = () => stream.end({ data: Buffer.alloc(0), last: true });
  return { stream, answer, finish };
}

const byHost = <T extends { hostname: string }>(nodes: T[]): T[] => [...nodes].sort((x, y) => x.hostname.localeCompare(y.hostname));

describe("image load", () => {
  it("relays every chunk, in order, to every ready node with the runtime, and answers per node", async () => {
    const { a, b, c } = await cluster();
    const chunks = ["chunk-1 ", "chunk-2 ", "chunk-3"].map((s) => Buffer.from(s));
    const l = load(h.client, [], chunks);
    l.finish();
    const res = await l.answer;
    expect(byHost(res.nodes).map((n) => [n.hostname, n.images, n.error])).toEqual([
      ["node1", ["docker.io/library/web:1"], ""],
      ["node2", ["docker.io/library/web:1"], ""],
    ]);
    for (const agent of [a, b]) {
      const [got] = [...agent.imageLoads.values()];
      expect(got?.seqs).toEqual([1, 2, 3]);
      expect(Buffer.concat(got!.pieces).toString()).toBe("chunk-1 chunk-2 chunk-3");
      expect(agent.images.has("docker.io/library/web:1")).toBe(true);
    }
    expect(c.imageLoads.size).toBe(0); // no container runtime: not a default target
  });

  it("answers each node's error: no container runtime, a bad tarball; the others load", async () => {
    const { a, b } = await cluster();
    b.options.loadImage = () => new Error("not a tar archive: bad header at byte 0");
    const l = load(h.client, ["node1", "node2", "node3"], [Buffer.from("tar")]);
    l.finish();
    const res = byHost((await l.answer).nodes);
    expect(res.map((n) => [n.hostname, n.images])).toEqual([
      ["node1", ["docker.io/library/web:1"]],
      ["node2", []],
      ["node3", []],
    ]);
    expect(res[1]!.error).toBe("not a tar archive: bad header at byte 0");
    expect(res[2]!.error).toMatch(/^node node3 has no container runtime: its agent found no containerd/);
    expect(a.images.size).toBe(1);
    expect(b.images.size).toBe(0);
  });

  it("refuses a load nowhere to go, and an unknown node", async () => {
    h = await startHarness();
    await h.addAgent("node1", { runtimes: ["process"] });
    const none = load(h.client, [], [Buffer.from("x")]);
    none.finish();
    expect(await failure(none.answer)).toEqual({ code: "FAILED_PRECONDITION", details: expect.stringMatching(/no ready node has the container runtime/) });
    const unknown = load(h.client, ["nope"], [Buffer.from("x")]);
    unknown.finish();
    expect((await failure(unknown.answer)).code).toBe("NOT_FOUND");
  });

  it("keeps at most the window unacknowledged per node: the caller waits for the slowest", async () => {
    const { a, b } = await cluster();
    a.holdImageAcks();
    const chunks = Array.from({ length: 12 }, (_, i) => Buffer.alloc(MiB, i));
    const l = load(h.client, [], chunks);
    l.finish();
    const received = (agent: SimAgent) => [...agent.imageLoads.values()].reduce((n, x) => n + x.pieces.length, 0);
    await waitFor("a full window at node1", () => received(a) >= LOAD_WINDOW_BYTES / MiB || undefined);
    // a list answered by node1 after it: anything the manager had sent before is in
    expect((await call(h.client, "listImages", { nodes: ["node1"] })).nodes[0]?.error).toBe("");
    expect(received(a)).toBe(LOAD_WINDOW_BYTES / MiB);
    expect(received(b)).toBe(LOAD_WINDOW_BYTES / MiB); // the fast node waits too: one stream feeds both
    a.releaseImageAcks();
    const res = await l.answer;
    expect(res.nodes.every((n) => n.error === "")).toBe(true);
    for (const agent of [a, b]) {
      const [got] = [...agent.imageLoads.values()];
      expect(got?.seqs).toEqual(chunks.map((_, i) => i + 1));
      expect(Buffer.concat(got!.pieces).equals(Buffer.concat(chunks))).toBe(true);
    }
  });

  it("a caller that goes away aborts the load on every node; a node lost midway answers so", async () => {
    const { a, b } = await cluster();
    const l = load(h.client, [], [Buffer.from("part")]);
    await waitFor("both nodes got the first piece", () => (a.imageLoads.size && b.imageLoads.size) || undefined);
    l.stream.cancel();
    await l.answer.catch(() => {});
    await waitFor("both loads aborted", () => [a, b].every((x) => [...x.imageLoads.values()][0]?.aborted) || undefined);
    expect(a.images.size + b.images.size).toBe(0);

    const m = load(h.client, [], [Buffer.from("part")]);
    await waitFor("the second load reached node2", () => (b.imageLoads.size === 2 && a.imageLoads.size === 2) || undefined);
    b.stop();
    m.finish();
    const res = byHost((await m.answer).nodes);
    expect(res[0]).toMatchObject({ hostname: "node1", images: ["docker.io/library/web:1"], error: "" });
    expect(res[1]).toMatchObject({ hostname: "node2", images: [], error: expect.stringMatching(/^node node2 disconnected$|is not connected/) });
  });
});

describe("image ls and rm", () => {
  async function withUser() {
    const nodes = await cluster();
    for (const agent of [nodes.a, nodes.b]) agent.images.set("docker.io/library/web:1", simImage("docker.io/library/web:1"));
    nodes.a.images.set("docker.io/library/old:2", simImage("docker.io/library/old:2"));
    const spec = serviceSpec("web", { replicated: { replicas: 1 } }) as { taskTemplate: { container: Record<string, unknown>; placement?: unknown } };
    spec.taskTemplate = { container: { image: "web:1", command: [] }, placement: { constraints: ["node.hostname==node2"] } };
    await call(h.client, "createService", { spec: spec as wire.ServiceSpecInput });
    await waitRunning(h, "web", 1);
    return nodes;
  }

  it("lists each node's images with the tasks that use them", async () => {
    await withUser();
    const res = byHost((await call(h.client, "listImages", {})).nodes);
    expect(res.map((n) => [n.hostname, n.images.map((i) => [i.name, i.tasks])])).toEqual([
      ["node1", [["docker.io/library/web:1", []], ["docker.io/library/old:2", []]]],
      ["node2", [["docker.io/library/web:1", ["web.1"]]]],
    ]);
    expect(res[0]!.images[0]!.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const named = await call(h.client, "listImages", { nodes: ["node3"] });
    expect(named.nodes[0]?.error).toMatch(/has no container runtime/);
  });

  it("refuses to remove an image a task uses, on every node, naming the task; --force removes it", async () => {
    const { a, b } = await withUser();
    expect(await failure(call(h.client, "removeImage", { image: "web:1", nodes: [], force: false }))).toEqual({
      code: "FAILED_PRECONDITION",
      details: expect.stringMatching(/^node2: image web:1 is in use by tasks web\.1/),
    });
    expect(a.images.has("docker.io/library/web:1")).toBe(true); // refused on node2: node1 keeps it too
    const forced = await call(h.client, "removeImage", { image: "web:1", nodes: [], force: true });
    expect(byHost(forced.nodes).map((n) => [n.hostname, n.images, n.error])).toEqual([
      ["node1", ["docker.io/library/web:1"], ""],
      ["node2", ["docker.io/library/web:1"], ""],
    ]);
    expect(a.images.has("docker.io/library/web:1") || b.images.has("docker.io/library/web:1")).toBe(false);
  });

  it("removes from the nodes that have it; NOT_FOUND when none has", async () => {
    const { a } = await withUser();
    const res = await call(h.client, "removeImage", { image: "old:2", nodes: [], force: false });
    expect(res.nodes.map((n) => [n.hostname, n.images])).toEqual([["node1", ["docker.io/library/old:2"]]]);
    expect(a.images.has("docker.io/library/old:2")).toBe(false);
    expect(await failure(call(h.client, "removeImage", { image: "old:2", nodes: [], force: false }))).toEqual({ code: "NOT_FOUND", details: "No such image: old:2" });
  });

  it("the read-only identity may list, not load or remove", async () => {
    await withUser();
    const ro = clusterClient(h.address, credentialsFromDir(h.manager.readonlyTlsDir!));
    try {
      expect((await call(ro, "listImages", {})).nodes).toHaveLength(2);
      expect((await failure(call(ro, "removeImage", { image: "old:2", nodes: [], force: false }))).code).toBe("PERMISSION_DENIED");
      const l = load(ro, [], [Buffer.from("x")]);
      l.finish();
      expect(await failure(l.answer)).toEqual({ code: "PERMISSION_DENIED", details: "a readonly certificate may not call LoadImage" });
    } finally {
      ro.close();
    }
  });
});

describe("docker service create of a loaded image", () => {
  it("pins the image to the digest the nodes hold (/distribution); an unknown image is 404 and kept as given", async () => {
    h = await startHarness({ dockerApi: true });
    const agent = await h.addAgent("node1");
    const image = simImage("docker.io/library/web:1");
    agent.images.set(image.name, image);
    const sock = h.docker!.unix;
    await dockerOk(sock, ["service", "create", "--detach", "--name", "web", "web:1"]);
    const pinned = await call(h.client, "inspectService", { service: "web" });
    expect(pinned.service?.spec?.taskTemplate?.container?.image).toBe(`web:1@${image.digest}`);
    await waitRunning(h, "web", 1);

    // the cluster's images, as docker image ls reads them
    expect(await dockerOk(sock, ["image", "ls", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Containers}}"])).toBe(
      `web:1 ${image.digest.slice("sha256:".length, "sha256:".length + 12)} 1\n`,
    );

    const out = await dockerOk(sock, ["service", "create", "--detach", "--name", "other", "other:3"]);
    expect(out).not.toContain("Error");
    expect((await call(h.client, "inspectService", { service: "other" })).service?.spec?.taskTemplate?.container?.image).toBe("other:3");
  });
});

describe("a node that does not answer", () => {
  /** Short limits, so that the tests wait a fraction of a second for the stuck node. */
  const shorten = () => Object.assign(IMAGE_TIMEOUTS, { askMs: 300, loadIdleMs: 300, loadFinishMs: 300 });

  it("ls and rm answer for it after the ask timeout; the other nodes answer as usual", async () => {
    shorten();
    const { a, b } = await cluster();
    a.images.set("docker.io/library/old:2", simImage("docker.io/library/old:2"));
    b.ignoreImageRequests();
    const res = byHost((await call(h.client, "listImages", {})).nodes);
    expect(res.map((n) => [n.hostname, n.images.map((i) => i.name), n.error])).toEqual([
      ["node1", ["docker.io/library/old:2"], ""],
      ["node2", [], "node node2 did not answer within 0.3s"],
    ]);
    // a removal cannot tell whether node2 holds it: refused, node1 keeps it
    expect(await failure(call(h.client, "removeImage", { image: "old:2", nodes: [], force: false }))).toEqual({
      code: "UNAVAILABLE",
      details: "node2: node node2 did not answer within 0.3s",
    });
    expect(a.images.has("docker.io/library/old:2")).toBe(true);
  });

  it("docker service create pins the image from the nodes that answer", async () => {
    shorten();
    h = await startHarness({ dockerApi: true });
    const a = await h.addAgent("node1");
    const b = await h.addAgent("node2");
    b.ignoreImageRequests();
    const image = simImage("docker.io/library/web:1");
    a.images.set(image.name, image);
    await dockerOk(h.docker!.unix, ["service", "create", "--detach", "--name", "web", "web:1"]);
    expect((await call(h.client, "inspectService", { service: "web" })).service?.spec?.taskTemplate?.container?.image).toBe(`web:1@${image.digest}`);
  });

  it("a load fails on a node that acknowledges no piece for the idle limit, and is aborted there; the others load", async () => {
    shorten();
    const { a, b } = await cluster();
    b.holdImageAcks();
    const l = load(h.client, [], [Buffer.from("chunk")]);
    await waitFor("both nodes got the piece", () => (a.imageLoads.size && b.imageLoads.size) || undefined);
    await waitFor("node2's load aborted", () => [...b.imageLoads.values()][0]?.aborted || undefined);
    l.finish();
    const res = byHost((await l.answer).nodes);
    expect(res.map((n) => [n.hostname, n.images, n.error])).toEqual([
      ["node1", ["docker.io/library/web:1"], ""],
      ["node2", [], "node node2 acknowledged no piece of the load for 0.3s"],
    ]);
  });

  it("acknowledgements keep a slow load going; a node that never answers its end fails after the finish limit", async () => {
    shorten();
    const { a, b } = await cluster();
    b.ignoreImageRequests();
    const l = load(h.client, [], []);
    // five pieces, 100 ms apart: longer than the idle limit in all, acknowledged each
    for (let i = 0; i < 5; i++) {
      l.stream.write({ data: Buffer.from(`piece-${i} `) });
      await new Promise((r) => setTimeout(r, 100));
    }
    l.finish();
    const res = byHost((await l.answer).nodes);
    expect(res.map((n) => [n.hostname, n.images, n.error])).toEqual([
      ["node1", ["docker.io/library/web:1"], ""],
      ["node2", [], "node node2 did not finish the load within 0.3s of its last piece"],
    ]);
    expect([...b.imageLoads.values()][0]).toMatchObject({ ended: true, aborted: true });
    expect([...a.imageLoads.values()][0]?.seqs).toEqual([1, 2, 3, 4, 5]);
  });
});
