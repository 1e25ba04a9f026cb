import { applyServiceUpdate, VipmeshError } from "@vipmesh/core";
import { describe, expect, it } from "vitest";
import { UsageError } from "./errors.ts";
import { type ServiceCreateFlags, argsUpdate, buildServiceSpec, commandUpdate, parseNetworkAttachment, parsePublishRm, parseScale, shellWords } from "./service-spec.ts";

const createFlags = (overrides: Partial<ServiceCreateFlags> = {}): ServiceCreateFlags => ({
  name: "collabweb",
  networks: [],
  publish: [],
  labels: {},
  constraints: [],
  env: [],
  updateConfig: {},
  rollbackConfig: {},
  command: ["vipmesh", "whoami"],
  ...overrides,
});

describe("buildServiceSpec", () => {
  it("turns create flags into a complete spec", () => {
    const spec = buildServiceSpec(
      createFlags({
        replicas: 3,
        networks: ["appnet"],
        endpointMode: "vip",
        publish: ["80", "published=8080,target=81,protocol=udp,mode=host"],
        labels: { team: "web" },
        constraints: ["node.labels.zone==a"],
        env: ["A=1"],
        updateConfig: { parallelism: 2, delayMs: 5000, order: "start-first" },
        rollbackConfig: { monitorMs: 10 },
      }),
    );
    expect(spec).toEqual({
      annotations: { name: "collabweb", labels: { team: "web" } },
      taskTemplate: {
        container: { command: ["vipmesh", "whoami"], env: ["A=1"], healthcheck: null },
        placement: { constraints: ["node.labels.zone==a"] },
        forceUpdate: 0,
      },
      replicated: { replicas: 3 },
      networks: [{ target: "appnet" }],
      endpointSpec: {
        mode: "vip",
        ports: [
          { protocol: "tcp", targetPort: 80, publishedPort: 0, publishMode: "ingress" },
          { protocol: "udp", targetPort: 81, publishedPort: 8080, publishMode: "host" },
        ],
        lbScheduler: "",
        lbWeights: {},
        lbAffinity: "none",
        lbAffinityTimeoutS: 0,
      },
      updateConfig: { parallelism: 2, delayMs: 5000, failureAction: "pause", monitorMs: 5000, order: "start-first" },
      rollbackConfig: { parallelism: 1, delayMs: 0, failureAction: "pause", monitorMs: 10, order: "stop-first" },
    });
  });

  it("defaults to one replica and supports global mode", () => {
    expect(buildServiceSpec(createFlags()).replicated).toEqual({ replicas: 1 });
    const global = buildServiceSpec(createFlags({ mode: "global" }));
    expect(global.global).toEqual({});
    expect(global).not.toHaveProperty("replicated");
  });

  it("refuses --replicas with --mode global as a usage error", () => {
    expect(() => buildServiceSpec(createFlags({ mode: "global", replicas: 2 }))).toThrow(UsageError);
  });

  it("reports bad input with the validator's message", () => {
    expect(() => buildServiceSpec(createFlags({ publish: ["70000"] }))).toThrow(VipmeshError);
    expect(() => buildServiceSpec(createFlags({ publish: ["70000"] }))).toThrow(/70000.*1-65535/);
    expect(() => buildServiceSpec(createFlags({ command: [] }))).toThrow(/a command is required/);
  });
});

describe("load-balancing flags", () => {
  it("set the scheduler and per-slot weights on create", () => {
    const spec = buildServiceSpec(createFlags({ lbScheduler: "rr", lbWeights: { "1": 1, "2": 3 } }));
    expect(spec.endpointSpec).toMatchObject({ lbScheduler: "rr", lbWeights: { "1": 1, "2": 3 } });
  });
});

describe("affinity flags", () => {
  const sticky = (f: Partial<ServiceCreateFlags>) => buildServiceSpec(createFlags(f)).endpointSpec;

  it("set client-IP affinity on create, with 3 h unless a timeout is given", () => {
    expect(sticky({ lbAffinity: "client-ip" })).toMatchObject({ lbAffinity: "client-ip", lbAffinityTimeoutS: 10800 });
    expect(sticky({ lbAffinity: "client-ip", lbAffinityTimeoutS: 600 })).toMatchObject({ lbAffinity: "client-ip", lbAffinityTimeoutS: 600 });
    expect(sticky({})).toMatchObject({ lbAffinity: "none", lbAffinityTimeoutS: 0 });
    expect(() => sticky({ lbAffinityTimeoutS: 600 })).toThrow(/needs lb affinity client-ip/);
    expect(() => sticky({ lbAffinity: "client-ip", lbAffinityTimeoutS: 100_000 })).toThrow(/100000.*1-86400/);
  });
});

describe("confinement flags", () => {
  it("set the user, capabilities (stored canonical) and the limits given", () => {
    const spec = buildServiceSpec(
      createFlags({ user: "1000:1000", capAdd: ["net_admin"], capDrop: ["ALL"], limits: { nanoCpus: 500_000_000, memoryBytes: 512 * 1024 ** 2 } }),
    );
    expect(spec.taskTemplate.container).toMatchObject({ user: "1000:1000", capabilityAdd: ["CAP_NET_ADMIN"], capabilityDrop: ["ALL"] });
    expect(spec.taskTemplate.resources).toEqual({ limits: { nanoCpus: 500_000_000, memoryBytes: 512 * 1024 ** 2 } });
  });

  it("leave the spec as it was without them", () => {
    const spec = buildServiceSpec(createFlags({ capAdd: [], capDrop: [], limits: {} }));
    expect(spec.taskTemplate).toEqual({ container: { command: ["vipmesh", "whoami"], env: [], healthcheck: null }, placement: { constraints: [] }, forceUpdate: 0 });
  });

  it("report a bad value with the validator's message", () => {
    expect(() => buildServiceSpec(createFlags({ capAdd: ["CAP_FLY"] }))).toThrow(/cap-add: "CAP_FLY" is not a Linux capability/);
    expect(() => buildServiceSpec(createFlags({ user: "root:" }))).toThrow(/user "root:" is not valid/);
    expect(() => buildServiceSpec(createFlags({ limits: { memoryBytes: 1024 ** 2 } }))).toThrow(/memory limit: 1 MiB is below 6 MiB/);
  });
});

describe("docker's container and restart flags", () => {
  it("set the image, host name, container labels, restart policy and aliases", () => {
    const spec = buildServiceSpec(
      createFlags({
        image: "vipmesh/whoami",
        command: [],
        hostname: "h",
        containerLabels: { a: "b" },
        restartPolicy: { condition: "on-failure", maxAttempts: 2 },
        networks: ["name=appnet,alias=web,alias=frontend", "other"],
      }),
    );
    expect(spec.taskTemplate.container).toEqual({ image: "vipmesh/whoami", command: [], hostname: "h", labels: { a: "b" }, env: [], healthcheck: null });
    // the fields not given take Docker's defaults
    expect(spec.taskTemplate.restartPolicy).toEqual({ condition: "on-failure", delayMs: 5000, maxAttempts: 2, windowMs: 0 });
    expect(spec.networks).toEqual([{ target: "appnet", aliases: ["web", "frontend"] }, { target: "other" }]);
  });

  it("with --image, the words after the flags are Docker's Args (the image's CMD replaced) and --entrypoint its Command; without, the words are the host command", () => {
    const imaged = buildServiceSpec(createFlags({ image: "nginx:1.25", command: ["nginx", "-g", "daemon off;"] }));
    expect(imaged.taskTemplate.container).toMatchObject({ image: "nginx:1.25", command: [], args: ["nginx", "-g", "daemon off;"] });
    const known = buildServiceSpec(createFlags({ image: "vipmesh/whoami", command: ["--port", "8080"] }));
    expect(known.taskTemplate.container).toMatchObject({ image: "vipmesh/whoami", command: [], args: ["--port", "8080"] });
    const entry = buildServiceSpec(createFlags({ image: "busybox", entrypoint: ["/bin/sh", "-c"], command: ["echo hi"], workdir: "/tmp" }));
    expect(entry.taskTemplate.container).toMatchObject({ image: "busybox", command: ["/bin/sh", "-c"], args: ["echo hi"], dir: "/tmp" });
    const host = buildServiceSpec(createFlags({ command: ["sleep", "1"] }));
    expect(host.taskTemplate.container).toMatchObject({ command: ["sleep", "1"] });
    expect(host.taskTemplate.container).not.toHaveProperty("args");
    expect(() => buildServiceSpec(createFlags({ entrypoint: ["sh"], command: ["x"] }))).toThrow(/--entrypoint needs --image/);
  });

  it("set reservations beside the limits, refusing one above its limit", () => {
    const spec = buildServiceSpec(createFlags({ image: "nginx", command: [], reservations: { nanoCpus: 5e8, memoryBytes: 64 * 1024 ** 2 } }));
    expect(spec.taskTemplate.resources).toEqual({ limits: {}, reservations: { nanoCpus: 5e8, memoryBytes: 64 * 1024 ** 2 } });
    expect(buildServiceSpec(createFlags())).not.toHaveProperty("taskTemplate.resources");
    expect(() => buildServiceSpec(createFlags({ limits: { memoryBytes: 32 * 1024 ** 2 }, reservations: { memoryBytes: 64 * 1024 ** 2 } }))).toThrow(
      /memory reservation: 64 MiB is above the memory limit of 32 MiB/,
    );
    expect(() => buildServiceSpec(createFlags({ image: "nginx", command: [], workdir: "tmp" }))).toThrow(/workdir "tmp" is not an absolute path/);
  });

  it("leave the spec without a policy when no --restart-* flag is given", () => {
    expect(buildServiceSpec(createFlags({ restartPolicy: {} })).taskTemplate).not.toHaveProperty("restartPolicy");
  });

  it("report bad values with the validator's message", () => {
    expect(() => buildServiceSpec(createFlags({ hostname: "no_underscores" }))).toThrow(/hostname "no_underscores" is not a valid host name/);
    expect(() => buildServiceSpec(createFlags({ containerLabels: { "bad key": "" } }))).toThrow(/container labels: label key "bad key"/);
    expect(() => buildServiceSpec(createFlags({ networks: ["name=appnet,alias=-x"] }))).toThrow(/network appnet: alias name "-x" is not valid/);
    expect(() => buildServiceSpec(createFlags({ image: "two words", command: [] }))).toThrow(/image "two words" is not an image reference/);
  });
});

describe("argument parsers", () => {
  it("parses --network in docker's short and long forms", () => {
    expect(parseNetworkAttachment("appnet")).toEqual({ target: "appnet" });
    expect(parseNetworkAttachment("name=appnet")).toEqual({ target: "appnet" });
    expect(parseNetworkAttachment("alias=web,NAME=appnet,Alias=front")).toEqual({ target: "appnet", aliases: ["web", "front"] });
    expect(() => parseNetworkAttachment("alias=web")).toThrow(/name=\) is missing/);
    expect(() => parseNetworkAttachment("name=appnet,ip=10.0.0.2")).toThrow(/"ip" is not a key vipmesh takes/);
    expect(() => parseNetworkAttachment("name=appnet,web")).toThrow(/"web" is not KEY=VALUE/);
    expect(() => parseNetworkAttachment("=appnet")).toThrow(UsageError);
  });

  it("parses --publish-rm", () => {
    expect(parsePublishRm("80")).toEqual({ targetPort: 80, protocol: "tcp" });
    expect(parsePublishRm("53/udp")).toEqual({ targetPort: 53, protocol: "udp" });
    expect(parsePublishRm("8080:80/tcp")).toEqual({ targetPort: 80, protocol: "tcp" });
    expect(() => parsePublishRm("http")).toThrow(UsageError);
  });

  it("parses scale arguments", () => {
    expect(parseScale("web=3")).toEqual({ service: "web", replicas: 3 });
    expect(() => parseScale("web")).toThrow(UsageError);
    expect(() => parseScale("web=-1")).toThrow(UsageError);
  });
});

describe("--entrypoint and --args words", () => {
  it("split as a shell would: blanks separate, quotes and backslashes keep them", () => {
    expect(shellWords("--args", "  vipmesh whoami   --port 8080 ")).toEqual(["vipmesh", "whoami", "--port", "8080"]);
    expect(shellWords("--entrypoint", `/bin/sh -c 'echo "a  b"; exit 0'`)).toEqual(["/bin/sh", "-c", 'echo "a  b"; exit 0']);
    expect(shellWords("--args", `-g "daemon off;" a\\ b "" x"y"z`)).toEqual(["-g", "daemon off;", "a b", "", "xyz"]);
    expect(shellWords("--args", "")).toEqual([]);
    expect(() => shellWords("--entrypoint", `sh -c 'echo`)).toThrow(/--entrypoint "sh -c 'echo": the single quote is not closed/);
  });

  it("--args of update: a service with an image gets Args, one without a host command", () => {
    const imaged = buildServiceSpec(createFlags({ image: "nginx", command: [] }));
    const host = buildServiceSpec(createFlags());
    expect(argsUpdate(imaged, undefined, ["-g", "x"])).toEqual({ args: ["-g", "x"] });
    expect(argsUpdate(imaged, undefined, [])).toEqual({ args: [] });
    expect(argsUpdate(host, undefined, ["sleep", "1"])).toEqual({ command: ["sleep", "1"] });
    expect(argsUpdate(host, "nginx", ["-g", "x"])).toEqual({ args: ["-g", "x"] });
    expect(argsUpdate(imaged, "", ["sleep", "1"])).toEqual({ command: ["sleep", "1"] });
    expect(() => argsUpdate(host, undefined, [])).toThrow(/--args needs a command/);
  });

  it("update --entrypoint needs an image after the update, as create's does", () => {
    const host = buildServiceSpec(createFlags());
    const imaged = buildServiceSpec(createFlags({ image: "nginx", command: [] }));
    expect(() => commandUpdate(host, { entrypoint: ["/bin/sh"] })).toThrow(UsageError);
    expect(() => commandUpdate(host, { entrypoint: ["/bin/sh"] })).toThrow(/^--entrypoint needs an image: service collabweb has none, so its host command is what it runs/);
    expect(() => commandUpdate(imaged, { image: "", entrypoint: ["/bin/sh"] })).toThrow(/service collabweb has none after --image ""/);
    expect(commandUpdate(host, { image: "nginx", entrypoint: ["/bin/sh"] })).toEqual({ entrypoint: ["/bin/sh"] });
    expect(commandUpdate(imaged, { entrypoint: [], args: ["-g", "x"] })).toEqual({ entrypoint: [], args: ["-g", "x"] });
  });

  it("update --args of a service with an image and an entrypoint makes the spec create makes with those words", () => {
    const flags = { image: "busybox", entrypoint: ["/bin/sh", "-c"] };
    const created = buildServiceSpec(createFlags({ ...flags, command: ["echo one"] }));
    const updated = applyServiceUpdate(created, commandUpdate(created, { args: ["echo two"] }));
    expect(updated.taskTemplate.container).toEqual(buildServiceSpec(createFlags({ ...flags, command: ["echo two"] })).taskTemplate.container);
    // --entrypoint "" gives the image's ENTRYPOINT back with them
    const plain = applyServiceUpdate(created, commandUpdate(created, { entrypoint: [], args: ["echo", "two"] }));
    expect(plain.taskTemplate.container).toEqual(buildServiceSpec(createFlags({ image: "busybox", command: ["echo", "two"] })).taskTemplate.container);
  });

  it("update --image on a host-command service runs the command as the image's CMD; with --args, the words instead", () => {
    const host = buildServiceSpec(createFlags({ command: ["httpd", "-f"] }));
    const imaged = applyServiceUpdate(host, { image: "busybox", ...commandUpdate(host, { image: "busybox" }) });
    expect(imaged.taskTemplate.container).toEqual(buildServiceSpec(createFlags({ image: "busybox", command: ["httpd", "-f"] })).taskTemplate.container);
    const given = applyServiceUpdate(host, { image: "busybox", ...commandUpdate(host, { image: "busybox", args: ["sleep", "9"] }) });
    expect(given.taskTemplate.container).toMatchObject({ image: "busybox", command: [], args: ["sleep", "9"] });
  });
});
