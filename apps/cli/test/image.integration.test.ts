// vipmesh image load|ls|rm against a real manager on 127.0.0.1:0, its nodes
// simulated agents (which load what the test says a tarball holds), run
// in-process through run(argv, io) with captured output.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { call, clusterClient, credentialsFromDir } from "@vipmesh/api";
import { type RunningManager, startManager } from "@vipmesh/manager";
import { SimAgent, simImage, waitFor } from "@vipmesh/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOAD_CHUNK_BYTES } from "../src/commands/image.ts";
import { runCli } from "./run-cli.ts";

let dir: string;
let manager: RunningManager;
let agents: SimAgent[];
const WEB = "docker.io/library/web:1";

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "vipmesh-cli-image-"));
  manager = await startManager({ dataDir: join(dir, "data"), listen: ["127.0.0.1:0"] });
  const host = manager.addresses[0]!;
  const client = clusterClient(host, credentialsFromDir(manager.adminTlsDir!));
  const token = (await call(client, "getJoinToken", { role: "worker" })).token;
  client.close();
  const loadImage = (tar: Buffer) => (tar.subarray(0, 3).toString() === "bad" ? new Error("tar: the archive is truncated") : [WEB]);
  agents = [
    await new SimAgent(host, { hostname: "node-1", addr: "192.0.2.41", token, loadImage }).start(),
    await new SimAgent(host, { hostname: "node-2", addr: "192.0.2.42", token, loadImage }).start(),
    await new SimAgent(host, { hostname: "node-3", addr: "192.0.2.43", token, runtimes: ["process"] }).start(),
  ];
});
afterAll(async () => {
  for (const a of agents ?? []) a.stop();
  await manager?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const vipmesh = (...argv: string[]) => runCli(["--host", manager.addresses[0]!, "--tls-dir", manager.adminTlsDir!, ...argv]);

describe("vipmesh image", () => {
  it("load streams the file in chunks to every ready node with containers and prints what each loaded", async () => {
    const file = join(dir, "web.tar");
    const content = Buffer.alloc(2 * LOAD_CHUNK_BYTES + 123, 7);
    writeFileSync(file, content);
    expect(await vipmesh("image", "load", file)).toEqual({
      code: 0,
      stdout: `node-1: Loaded image: ${WEB}\nnode-2: Loaded image: ${WEB}\n`,
      stderr: "",
    });
    for (const a of agents.slice(0, 2)) {
      const [load] = [...a.imageLoads.values()];
      expect(load?.pieces.map((p) => p.length)).toEqual([LOAD_CHUNK_BYTES, LOAD_CHUNK_BYTES, 123]);
      expect(Buffer.concat(load!.pieces).equals(content)).toBe(true);
    }
    expect(agents[2]!.imageLoads.size).toBe(0);
  });

  it("load reports each node that could not, and exits 1", async () => {
    const bad = join(dir, "bad.tar");
    writeFileSync(bad, "bad tarball");
    expect(await vipmesh("image", "load", bad, "--node", "node-1", "--node", "node-3")).toEqual({
      code: 1,
      stdout: "",
      stderr:
        "Error: node-1: tar: the archive is truncated\n" +
        "Error: node-3: node node-3 has no container runtime: its agent found no containerd (see its --containerd-socket)\n",
    });
    const missing = await vipmesh("image", "load", join(dir, "nope.tar"));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^Error: cannot read the image tarball: ENOENT: no such file or directory/);
    expect((await vipmesh("image", "load", bad, "--node", "node-9")).stderr).toMatch(/^Error: .*node-9/);
  });

  it("ls shows each node's images and the tasks that use them; rm is refused while a task uses one, unless --force", async () => {
    agents[0]!.images.set("docker.io/library/old:2", simImage("docker.io/library/old:2"));
    const ls = await vipmesh("image", "ls");
    expect(ls.code).toBe(0);
    const digest = agents[0]!.images.get(WEB)!.digest.slice(0, "sha256:".length + 12);
    expect(ls.stdout.split("\n")[0]).toMatch(/^NODE\s+IMAGE\s+DIGEST\s+SIZE\s+IN USE$/);
    expect(ls.stdout).toMatch(new RegExp(`node-1\\s+docker.io/library/web:1\\s+${digest}\\s+2.1MB\\s*\\n`));
    expect(ls.stdout).toMatch(/node-1\s+docker.io\/library\/old:2\s+sha256:[0-9a-f]{12}\s+23B/); // its name is its content

    const created = await vipmesh("service", "create", "--detach", "--name", "web", "--image", "web:1", "--constraint", "node.hostname==node-2");
    expect(created.stderr).toBe("");
    await waitFor("web.1 in use on node-2", async () => (await vipmesh("image", "ls", "--node", "node-2")).stdout.includes("web.1") || undefined);

    expect(await vipmesh("image", "rm", "web:1")).toEqual({
      code: 1,
      stdout: "",
      stderr: expect.stringMatching(/^Error: node-2: image web:1 is in use by tasks web\.1/),
    });
    expect(agents[0]!.images.has(WEB)).toBe(true);
    expect(await vipmesh("image", "rm", "old:2", "gone:1")).toEqual({
      code: 1,
      stdout: "node-1: Deleted: docker.io/library/old:2\n",
      stderr: "Error: No such image: gone:1\n",
    });
    expect(await vipmesh("image", "rm", "--force", "web:1")).toEqual({ code: 0, stdout: `node-1: Deleted: ${WEB}\nnode-2: Deleted: ${WEB}\n`, stderr: "" });
    expect((await vipmesh("image", "ls", "-q")).stdout).toBe("");
  });
});
