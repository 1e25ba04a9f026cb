// Pulls into a private containerd from a registry on loopback (token auth, an
// index with several platforms, a gzipped layer), and checks that failures
// say why and leave no content behind; a pull from a namespace without routes
// fails at once because the name does not resolve.

import { execFileSync } from "node:child_process";
import { type AddressInfo, createServer } from "node:net";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Containerd } from "../src/index.ts";
import { sha256 } from "../src/content.ts";
import { MEDIA } from "../src/reference.ts";
import { writeTar } from "../src/tar.ts";
import { type FakeRegistry, startFakeRegistry } from "./fake-registry.ts";
import { containerdDescribe } from "@vipmesh/testing/kernel";
import { TestLab } from "./lab.ts";
import { sampleFiles } from "./sample-image.ts";

const REPO = "team/sample";

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

containerdDescribe("containerd pull", () => {
  const lab = new TestLab();
  const ns = "vipmesh-test";
  let cd: Containerd;
  let reg: FakeRegistry;

  function json(o: object): Buffer {
    return Buffer.from(JSON.stringify(o));
  }

  /** Publishes a one-layer image under `tag`, inside an index that also has an arm64 entry. */
  function publish(tag: string, o: { corruptLayer?: boolean; oversizeLayer?: boolean; platforms?: string[] } = {}): { layerDigest: string } {
    const tar = writeTar([...sampleFiles(), { path: "tag", mode: 0o644, content: Buffer.from(tag) }]);
    const layer = gzipSync(tar);
    const config = json({
      architecture: "amd64",
      os: "linux",
      config: { Entrypoint: ["/bin/httpd", "-f"], Env: ["PATH=/bin"] },
      rootfs: { type: "layers", diff_ids: [sha256(tar)] },
    });
    const manifest = json({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.ociConfig, digest: sha256(config), size: config.length },
      layers: [{ mediaType: MEDIA.ociLayerGzip, digest: sha256(layer), size: layer.length }],
    });
    const platforms = o.platforms ?? ["linux/arm64", "linux/amd64"];
    const index = json({
      schemaVersion: 2,
      mediaType: MEDIA.ociIndex,
      manifests: platforms.map((p) => {
        const [os, architecture] = p.split("/");
        return { mediaType: MEDIA.ociManifest, digest: sha256(manifest), size: manifest.length, platform: { os, architecture } };
      }),
    });
    reg.manifests.set(tag, { mediaType: MEDIA.ociIndex, body: index });
    reg.manifests.set(sha256(manifest), { mediaType: MEDIA.ociManifest, body: manifest });
    reg.blobs.set(sha256(config), config);
    const served = Buffer.from(layer);
    if (o.corruptLayer) served.writeUInt8(served.readUInt8(served.length >> 1) ^ 0xff, served.length >> 1);
    reg.blobs.set(sha256(layer), o.oversizeLayer ? Buffer.concat([served, Buffer.alloc(1 << 20)]) : served);
    return { layerDigest: sha256(layer) };
  }

  beforeAll(async () => {
    const d = await lab.start();
    cd = await Containerd.connect({ socket: d.socket, namespace: ns });
    reg = await startFakeRegistry(REPO);
  });
  afterAll(async () => {
    cd?.close();
    await reg?.close();
    await lab.cleanup();
  });

  it("pulls an image: token, index → linux/amd64, layer unpacked, progress to the end", async () => {
    publish("1");
    const progress: { doneBytes: number; totalBytes: number }[] = [];
    const img = await cd.pull(`${reg.host}/${REPO}:1`, (p) => progress.push(p));
    expect(img.name).toBe(`${reg.host}/${REPO}:1`);
    expect(img.config.entrypoint).toEqual(["/bin/httpd", "-f"]);
    expect(await cd.snapshots()).toEqual([img.chainId]);
    expect(lab.ctr("-n", ns, "images", "check")).toMatch(new RegExp(`${reg.host}/${REPO}:1\\s.*complete`));
    const last = progress[progress.length - 1];
    expect(last?.doneBytes).toBe(last?.totalBytes);
    expect(last?.totalBytes).toBeGreaterThan(0);
    expect(reg.requests).toContain("GET /token");
    // a second pull finds the layer in the store and does not fetch it again
    const fetched = reg.requests.filter((r) => r.includes("/blobs/sha256:")).length;
    expect((await cd.pull(`${reg.host}/${REPO}:1`)).digest).toBe(img.digest);
    expect(reg.requests.filter((r) => r.includes("/blobs/sha256:")).length).toBe(fetched + 1); // the config only
  });

  it("says why a pull fails, and leaves no content behind", async () => {
    const before = lab.ctr("-n", ns, "content", "ls", "-q");
    await expect(cd.pull(`${reg.host}/${REPO}:nope`)).rejects.toThrow(`cannot pull ${reg.host}/${REPO}:nope: tag nope not found`);
    publish("arm", { platforms: ["linux/arm64", "linux/s390x"] });
    await expect(cd.pull(`${reg.host}/${REPO}:arm`)).rejects.toThrow("has no linux/amd64 image (it has linux/arm64, linux/s390x)");
    publish("bad", { corruptLayer: true });
    await expect(cd.pull(`${reg.host}/${REPO}:bad`)).rejects.toThrow("does not match its digest");
    const { layerDigest } = publish("big", { oversizeLayer: true });
    await expect(cd.pull(`${reg.host}/${REPO}:big`)).rejects.toThrow(`cannot pull ${reg.host}/${REPO}:big: layer ${layerDigest} is over ${Number(reg.blobs.get(layerDigest)?.length) - (1 << 20)} bytes`);
    await expect(cd.pull("Bad/Name")).rejects.toThrow("repository names must be lowercase");
    const closed = await closedPort();
    await expect(cd.pull(`127.0.0.1:${closed}/x/y`)).rejects.toThrow(`127.0.0.1:${closed} refused the connection`);
    expect(lab.ctr("-n", ns, "content", "ls", "-q")).toBe(before);
    expect(lab.ctr("-n", ns, "content", "active").trim().split("\n")).toHaveLength(1); // the header line only
  });

  it("fails at once in a network namespace without routes: the registry's name does not resolve", () => {
    const offline = lab.netns("off");
    const script = `
      import { Containerd } from ${JSON.stringify(new URL("../src/index.ts", import.meta.url).pathname)};
      const cd = await Containerd.connect({ socket: ${JSON.stringify(lab.daemon?.socket)}, namespace: "${ns}" });
      try { await cd.pull("busybox"); console.log("pulled?!"); } catch (e) { console.log(e.message); } finally { cd.close(); }
    `;
    const out = execFileSync("ip", ["netns", "exec", offline, process.execPath, "--import", "tsx", "--input-type=module", "-e", script], {
      encoding: "utf8",
      timeout: 30_000,
      cwd: new URL("..", import.meta.url).pathname,
    });
    expect(out.trim()).toMatch(/^cannot pull docker\.io\/library\/busybox:latest: registry-1\.docker\.io (does not resolve|: no route)/);
  });
});
