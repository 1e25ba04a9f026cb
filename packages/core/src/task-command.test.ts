import { describe, expect, it } from "vitest";
import { imageRepository, taskCommand } from "./task-command.ts";
import type { ContainerSpec } from "./types.ts";

const c = (o: Partial<ContainerSpec>): ContainerSpec => ({ command: [], env: [], ...o });
const WHOAMI = ["vipmesh", "whoami", "--port", "80"];

describe("imageRepository", () => {
  it.each([
    ["vipmesh/whoami", "vipmesh/whoami"],
    ["vipmesh/whoami:1.2", "vipmesh/whoami"],
    ["docker.io/vipmesh/whoami:latest", "vipmesh/whoami"],
    ["index.docker.io/vipmesh/whoami", "vipmesh/whoami"],
    [`vipmesh/whoami@sha256:${"a".repeat(64)}`, "vipmesh/whoami"],
    [`vipmesh/whoami:v1@sha256:${"b".repeat(64)}`, "vipmesh/whoami"],
    ["docker.io/library/nginx:1.27", "nginx"],
    ["library/nginx", "nginx"],
    ["registry.local:5000/vipmesh/whoami", "registry.local:5000/vipmesh/whoami"],
  ])("%s → %s", (image, repo) => expect(imageRepository(image)).toBe(repo));
});

describe("taskCommand", () => {
  it("runs the command and its args, whatever the image", () => {
    expect(taskCommand(c({ command: ["vipmesh", "whoami", "--port", "80"] }))).toEqual({ argv: WHOAMI });
    expect(taskCommand(c({ image: "nginx:1.27", command: ["sleep"], args: ["60"] }))).toEqual({ argv: ["sleep", "60"] });
    expect(taskCommand(c({ image: "vipmesh/whoami", command: ["sh", "-c"], args: ["exit 0"] }))).toEqual({ argv: ["sh", "-c", "exit 0"] });
  });

  it.each([
    "vipmesh/whoami",
    "vipmesh/whoami:latest",
    "docker.io/vipmesh/whoami:2",
    "index.docker.io/vipmesh/whoami",
    `vipmesh/whoami@sha256:${"c".repeat(64)}`,
    `docker.io/vipmesh/whoami:1@sha256:${"d".repeat(64)}`,
  ])("runs %s's entrypoint with its default arguments", (image) => {
    expect(taskCommand(c({ image }))).toEqual({ argv: WHOAMI });
  });

  it("runs a known image's entrypoint with the args given in place of its defaults", () => {
    expect(taskCommand(c({ image: "vipmesh/whoami", args: ["--port", "8080"] }))).toEqual({ argv: ["vipmesh", "whoami", "--port", "8080"] });
    expect(taskCommand(c({ image: "vipmesh/whoami", args: [] }))).toEqual({ argv: WHOAMI });
  });

  it("runs the args of an image it does not know, as docker service create IMAGE COMMAND gives them", () => {
    expect(taskCommand(c({ image: "alpine:3", args: ["sleep", "60"] }))).toEqual({ argv: ["sleep", "60"] });
    expect(taskCommand(c({ args: ["sleep", "60"] }))).toEqual({ argv: ["sleep", "60"] });
  });

  it("says why an image it cannot run runs nothing, and the fix", () => {
    const r = taskCommand(c({ image: "nginx:1.27" }));
    expect(r).toEqual({ error: expect.stringContaining(`image "nginx:1.27" is not one vipmesh can run`) });
    expect("error" in r && r.error).toMatch(/give the task a command .*or use vipmesh\/whoami/);
    // a look-alike is not the image
    expect(taskCommand(c({ image: "evil/vipmesh/whoami" }))).toHaveProperty("error");
    expect(taskCommand(c({ image: "registry.local/vipmesh/whoami" }))).toHaveProperty("error");
  });

  it("says a task with neither command nor image has nothing to run", () => {
    for (const spec of [c({}), c({ image: "" }), c({ image: "  " })]) {
      const r = taskCommand(spec);
      expect(r).toEqual({ error: expect.stringMatching(/^the task has no command and no image: give the task a command/) });
    }
  });
});
