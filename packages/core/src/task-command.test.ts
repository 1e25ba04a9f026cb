import { describe, expect, it } from "vitest";
import { commandOf, imageRepository, taskCommand, taskRuntime } from "./task-command.ts";
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

  it("runs the args alone when there is no image", () => {
    expect(taskCommand(c({ args: ["sleep", "60"] }))).toEqual({ argv: ["sleep", "60"] });
  });

  it("says a task with neither command nor image has nothing to run", () => {
    for (const spec of [c({}), c({ image: "" }), c({ image: "  " })]) {
      const r = taskCommand(spec);
      expect(r).toEqual({ error: expect.stringMatching(/^the task has no command and no image: give the task a command/) });
    }
  });
});

describe("taskRuntime", () => {
  it("runs an image as a container, unless vipmesh runs it as a process", () => {
    expect(taskRuntime({ image: "nginx:1.27" })).toBe("container");
    expect(taskRuntime({ image: "registry.local:5000/vipmesh/whoami" })).toBe("container"); // a look-alike is not the image
    expect(taskRuntime({ image: "evil/vipmesh/whoami" })).toBe("container");
    expect(taskRuntime({ image: "docker.io/vipmesh/whoami:2" })).toBe("process");
    for (const image of [undefined, "", "  "]) expect(taskRuntime({ image })).toBe("process");
  });
});

describe("commandOf (Docker's rule over an image's entrypoint and CMD)", () => {
  const image = { entrypoint: ["/docker-entrypoint.sh"], cmd: ["nginx", "-g", "daemon off;"] };
  it.each([
    ["neither: entrypoint ++ CMD", c({ image: "nginx" }), ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]],
    ["args replace the CMD", c({ image: "nginx", args: ["nginx", "-T"] }), ["/docker-entrypoint.sh", "nginx", "-T"]],
    ["a command replaces the entrypoint and drops the CMD", c({ image: "nginx", command: ["sh"] }), ["sh"]],
    ["a command with args", c({ image: "nginx", command: ["sh", "-c"], args: ["echo hi"] }), ["sh", "-c", "echo hi"]],
  ])("%s", (_why, spec, argv) => expect(commandOf(spec, image)).toEqual({ argv }));

  it("says an image with no entrypoint and no CMD, and no command given, has nothing to run", () => {
    expect(commandOf(c({ image: "scratch-ish" }), { entrypoint: [], cmd: [] })).toEqual({
      error: expect.stringMatching(/^image "scratch-ish" has no entrypoint or CMD: give the task a command/),
    });
  });
});
