// Imports docker-archive and OCI-layout tarballs into a private containerd and
// reads back what containerd itself says (ctr images ls / snapshots ls).

import { mkdirSync, writeFileSync } from "node:fs";
import { PassThrough, Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Containerd, buildImageArchive, startContainerd } from "../src/index.ts";
import { containerdDescribe } from "@vipmesh/testing/kernel";
import { type TarFile, readTar, writeTar } from "../src/tar.ts";
import { TestLab } from "./lab.ts";
import { SAMPLE_ENTRYPOINT, sampleArchive } from "./sample-image.ts";

containerdDescribe("containerd images", () => {
  const lab = new TestLab();
  const ns = "vipmesh-test";
  let cd: Containerd;

  beforeAll(async () => {
    const d = await lab.start();
    cd = await Containerd.connect({ socket: d.socket, namespace: ns });
  });
  afterAll(async () => {
    cd?.close();
    await lab.cleanup();
  });

  it("answers its version", async () => {
    const v = await cd.version();
    expect(v.version).toMatch(/^1\.6\./);
  });

  it("says clearly when nothing listens on the socket", async () => {
    await expect(Containerd.connect({ socket: `${lab.dir}/nothing.sock`, namespace: ns })).rejects.toThrow(
      `containerd is not running at ${lab.dir}/nothing.sock`,
    );
  });

  it("startContainerd says why containerd did not start, with its log's tail", async () => {
    const dir = `${lab.dir}/broken`;
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${dir}/root`, "a file where containerd wants its root directory");
    await expect(startContainerd({ dir })).rejects.toThrow(/containerd exited \(\d+\) while starting; its log \(.*\) ends:\n(.|\n)*root/);
    await expect(startContainerd({ dir, netns: `${lab.id}-nonexistent` })).rejects.toThrow(`network namespace ${lab.id}-nonexistent does not exist`);
  });

  it("imports a docker-archive: image record, content and unpacked snapshot", async () => {
    const [img, ...more] = await cd.importArchive(Readable.from([sampleArchive("vipmesh/sample:docker", "docker-archive")]));
    expect(more).toEqual([]);
    expect(img?.name).toBe("docker.io/vipmesh/sample:docker");
    expect(img?.config.entrypoint).toEqual(SAMPLE_ENTRYPOINT);
    expect(img?.config.labels).toEqual({ "org.vipmesh.sample": "whoami" });
    expect(img?.chainId).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(lab.ctr("-n", ns, "images", "ls", "-q").split("\n")).toContain("docker.io/vipmesh/sample:docker");
    expect(lab.ctr("-n", ns, "images", "check")).toMatch(/docker\.io\/vipmesh\/sample:docker\s.*complete/);
    const snaps = lab.ctr("-n", ns, "snapshots", "--snapshotter", "overlayfs", "ls");
    expect(snaps).toMatch(new RegExp(`${img?.chainId}\\s+Committed`));
    expect(await cd.snapshots()).toContain(img?.chainId);
    expect(await cd.image("vipmesh/sample:docker")).toEqual(img);
    // a digest-pinned reference (as /distribution stores it) names the loaded image
    expect(await cd.image(`vipmesh/sample:docker@${img?.digest}`)).toEqual(img);
    expect(await cd.image(`vipmesh/sample@${img?.digest}`)).toEqual(img);
    expect(await cd.image(`vipmesh/sample:docker@sha256:${"0".repeat(64)}`)).toBeUndefined();
  });

  it("imports an OCI image layout, gzipped, with the same layer reusing the snapshot", async () => {
    const before = await cd.snapshots();
    const [img] = await cd.importArchive(Readable.from([gzipSync(sampleArchive("registry.local:5000/sample:oci", "oci"))]));
    expect(img?.name).toBe("registry.local:5000/sample:oci");
    expect(img?.config.entrypoint).toEqual(SAMPLE_ENTRYPOINT);
    expect(lab.ctr("-n", ns, "images", "ls", "-q").split("\n")).toContain("registry.local:5000/sample:oci");
    expect(await cd.snapshots()).toEqual(before);
    expect((await cd.images()).map((i) => i.name)).toEqual(["docker.io/vipmesh/sample:docker", "registry.local:5000/sample:oci"]);
  });

  it("refuses what is not an image archive, leaving nothing behind", async () => {
    const before = lab.ctr("-n", ns, "content", "ls", "-q");
    const notImage = buildImageArchive({ name: "x", format: "oci", files: [], config: {} }).subarray(0, 1024);
    await expect(cd.importArchive(Readable.from([notImage]))).rejects.toThrow(/tar|archive/);
    await expect(cd.importArchive(Readable.from([Buffer.from("hello")]))).rejects.toThrow(/tar/);
    // an archive whose big layer went into the content store before its missing config was noticed
    const files: TarFile[] = [];
    await readTar(Readable.from([sampleArchive("vipmesh/broken:1", "docker-archive")]), async (e, body) => {
      const parts: Buffer[] = [];
      await body((c) => void parts.push(Buffer.from(c)));
      if (e.path.endsWith(".json") && e.path !== "manifest.json") return;
      files.push({ path: e.path, mode: e.mode, ...(e.type === "dir" ? { dir: true } : { content: Buffer.concat(parts) }) });
    });
    expect(files.some((f) => (f.content?.length ?? 0) > 1 << 20)).toBe(true);
    await expect(cd.importArchive(Readable.from([writeTar(files)]))).rejects.toThrow(/the archive has no [0-9a-f]{64}\.json \(an image config\)/);
    expect(lab.ctr("-n", ns, "content", "ls", "-q")).toBe(before);
  });

  it("a cancelled gzipped import rejects and leaves no lease or content behind", async () => {
    const before = lab.ctr("-n", ns, "content", "ls", "-q");
    const gz = gzipSync(sampleArchive("vipmesh/cancelled:1", "oci"));
    const input = new PassThrough();
    const imported = cd.importArchive(input);
    input.write(gz.subarray(0, gz.length >> 1));
    setTimeout(() => input.destroy(new Error("the client went away")), 200);
    await expect(imported).rejects.toThrow("the client went away");
    expect(lab.ctr("-n", ns, "leases", "ls").trim().split("\n")).toHaveLength(1); // the header line only
    expect(lab.ctr("-n", ns, "content", "ls", "-q")).toBe(before);
    expect(lab.ctr("-n", ns, "content", "active").trim().split("\n")).toHaveLength(1);
  }, 15_000);

  it("removes an image and lets GC drop its snapshots once no image holds them", async () => {
    const img = await cd.image("vipmesh/sample:docker");
    await cd.removeImage("vipmesh/sample:docker");
    expect(await cd.image("vipmesh/sample:docker")).toBeUndefined();
    expect(await cd.snapshots()).toContain(img?.chainId); // the OCI image still holds the same layer
    await cd.removeImage("registry.local:5000/sample:oci");
    expect(await cd.snapshots()).toEqual([]);
    expect(lab.ctr("-n", ns, "content", "ls", "-q").trim()).toBe("");
    await expect(cd.removeImage("vipmesh/sample:docker")).rejects.toThrow("no such image: docker.io/vipmesh/sample:docker");
  });
});
