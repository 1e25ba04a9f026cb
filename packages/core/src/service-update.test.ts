import { describe, expect, it } from "vitest";
import { applyServiceUpdate } from "./service-update.ts";
import { normalizeServiceSpec } from "./validation.ts";

const current = normalizeServiceSpec({
  annotations: { name: "collabweb", labels: { team: "web" } },
  taskTemplate: {
    container: { command: ["vipmesh", "whoami", "--port", "80"], env: ["A=1", "B=2"] },
    placement: { constraints: ["node.labels.zone==a"] },
  },
  replicated: { replicas: 3 },
  endpointSpec: {
    ports: [
      { protocol: "tcp", targetPort: 80 },
      { protocol: "udp", targetPort: 53, publishedPort: 5353 },
    ],
  },
  updateConfig: { delayMs: 10_000 },
});

describe("applyServiceUpdate", () => {
  it("changes nothing without a change", () => {
    expect(applyServiceUpdate(current, {})).toEqual(current);
  });

  it("adds, replaces and removes environment variables", () => {
    const spec = applyServiceUpdate(current, { envAdd: ["B=20", "C=3"], envRm: ["A"] });
    expect(spec.taskTemplate.container.env).toEqual(["B=20", "C=3"]);
  });

  it("removes before it adds, so removing A and adding A=2 ends with A=2", () => {
    expect(applyServiceUpdate(current, { envRm: ["A"], envAdd: ["A=2"] }).taskTemplate.container.env).toEqual(["B=2", "A=2"]);
  });

  it("adds and removes labels", () => {
    const spec = applyServiceUpdate(current, { labelAdd: { tier: "front" }, labelRm: ["team"] });
    expect(spec.annotations.labels).toEqual({ tier: "front" });
  });

  it("removes ports by target and protocol and adds new ones once", () => {
    const spec = applyServiceUpdate(current, {
      portsRm: [{ targetPort: 53, protocol: "udp" }],
      portsAdd: [
        { protocol: "tcp", targetPort: 80, publishedPort: 0, publishMode: "ingress" },
        { protocol: "tcp", targetPort: 443, publishedPort: 8443, publishMode: "ingress" },
      ],
    });
    expect(spec.endpointSpec.ports).toEqual([
      { protocol: "tcp", targetPort: 80, publishedPort: 0, publishMode: "ingress" },
      { protocol: "tcp", targetPort: 443, publishedPort: 8443, publishMode: "ingress" },
    ]);
  });

  it("moves an explicitly published port to its new target", () => {
    const moved = { protocol: "udp", targetPort: 54, publishedPort: 5353, publishMode: "ingress" } as const;
    const spec = applyServiceUpdate(current, { portsAdd: [moved] });
    expect(spec.endpointSpec.ports).toContainEqual(moved);
    expect(spec.endpointSpec.ports.filter((p) => p.publishedPort === 5353)).toHaveLength(1);
  });

  it("scales, forces, replaces the command and merges update settings", () => {
    const spec = applyServiceUpdate(current, {
      replicas: 5,
      force: true,
      command: ["sleep", "100"],
      updateConfig: { failureAction: "rollback" },
      endpointMode: "dnsrr",
      portsRm: [
        { targetPort: 80, protocol: "tcp" },
        { targetPort: 53, protocol: "udp" },
      ],
    });
    expect(spec.replicated).toEqual({ replicas: 5 });
    expect(spec.taskTemplate.forceUpdate).toBe(1);
    expect(spec.taskTemplate.container.command).toEqual(["sleep", "100"]);
    expect(spec.updateConfig).toEqual({ ...current.updateConfig, failureAction: "rollback" });
    expect(spec.endpointSpec).toEqual({ mode: "dnsrr", ports: [], lbScheduler: "", lbWeights: {}, lbAffinity: "none", lbAffinityTimeoutS: 0 });
  });

  it("adds and removes constraints", () => {
    const spec = applyServiceUpdate(current, { constraintRm: ["node.labels.zone==a"], constraintAdd: ["node.hostname!=node-2"] });
    expect(spec.taskTemplate.placement.constraints).toEqual(["node.hostname!=node-2"]);
  });

  it("refuses to set replicas on a global service", () => {
    const global = normalizeServiceSpec({ ...current, replicated: null, global: {} });
    expect(() => applyServiceUpdate(global, { replicas: 2 })).toThrow(/is global/);
  });

  it("merges per-slot weights into the current ones and keeps the scheduler", () => {
    const spec = normalizeServiceSpec({ ...current, endpointSpec: { ...current.endpointSpec, lbScheduler: "rr", lbWeights: { "1": 1, "2": 3 } } });
    expect(applyServiceUpdate(spec, { lbWeights: { "2": 0 } }).endpointSpec).toMatchObject({ lbScheduler: "rr", lbWeights: { "1": 1, "2": 0 } });
  });

  it("affinity: a timeout alone changes the timeout, none drops it, client-ip again takes the default", () => {
    const sticky = applyServiceUpdate(current, { lbAffinity: "client-ip" });
    expect(sticky.endpointSpec).toMatchObject({ lbAffinity: "client-ip", lbAffinityTimeoutS: 10800 });
    const shorter = applyServiceUpdate(sticky, { lbAffinityTimeoutS: 60 });
    expect(shorter.endpointSpec).toMatchObject({ lbAffinity: "client-ip", lbAffinityTimeoutS: 60 });
    expect(applyServiceUpdate(shorter, { lbScheduler: "rr" }).endpointSpec).toMatchObject({ lbAffinityTimeoutS: 60 });
    const off = applyServiceUpdate(shorter, { lbAffinity: "none" });
    expect(off.endpointSpec).toMatchObject({ lbAffinity: "none", lbAffinityTimeoutS: 0 });
    expect(applyServiceUpdate(off, { lbAffinity: "client-ip" }).endpointSpec).toMatchObject({ lbAffinityTimeoutS: 10800 });
    expect(() => applyServiceUpdate(off, { lbAffinityTimeoutS: 60 })).toThrow(/--lb-affinity client-ip/);
    expect(() => applyServiceUpdate(shorter, { lbAffinity: "none", lbAffinityTimeoutS: 60 })).toThrow(/needs lb affinity client-ip/);
  });

  it("sets the user, keeps it through other changes, and \"\" makes the tasks root again", () => {
    const spec = applyServiceUpdate(current, { user: "1000:1000" });
    expect(spec.taskTemplate.container.user).toBe("1000:1000");
    expect(applyServiceUpdate(spec, { envAdd: ["C=3"] }).taskTemplate.container.user).toBe("1000:1000");
    expect(applyServiceUpdate(spec, { user: "" }).taskTemplate.container).not.toHaveProperty("user");
    expect(() => applyServiceUpdate(spec, { user: "1000:staff" })).toThrow(/user "1000:staff" is not valid/);
  });

  describe("capabilities, as docker service update --cap-add/--cap-drop", () => {
    const caps = (spec: typeof current) => ({
      add: spec.taskTemplate.container.capabilityAdd ?? [],
      drop: spec.taskTemplate.container.capabilityDrop ?? [],
    });
    const confined = applyServiceUpdate(current, { capAdd: ["net_admin"], capDrop: ["NET_RAW", "CAP_CHOWN"] });

    it("adds and drops, stored canonical", () => {
      expect(caps(confined)).toEqual({ add: ["CAP_NET_ADMIN"], drop: ["CAP_CHOWN", "CAP_NET_RAW"] });
      expect(caps(applyServiceUpdate(confined, {}))).toEqual(caps(confined));
    });

    it("an added capability comes off the drop list and goes on the add list", () => {
      expect(caps(applyServiceUpdate(confined, { capAdd: ["NET_RAW"] }))).toEqual({ add: ["CAP_NET_ADMIN", "CAP_NET_RAW"], drop: ["CAP_CHOWN"] });
    });

    it("a dropped capability comes off the add list and goes on the drop list", () => {
      expect(caps(applyServiceUpdate(confined, { capDrop: ["cap_net_admin"] }))).toEqual({ add: [], drop: ["CAP_CHOWN", "CAP_NET_ADMIN", "CAP_NET_RAW"] });
    });

    it("named in both, a capability is added", () => {
      expect(caps(applyServiceUpdate(confined, { capAdd: ["SYS_TIME"], capDrop: ["sys_time"] }))).toEqual({
        add: ["CAP_NET_ADMIN", "CAP_SYS_TIME"],
        drop: ["CAP_CHOWN", "CAP_NET_RAW"],
      });
    });

    it("ALL replaces every other name of its list (and leaves the other list); RESET empties a list first", () => {
      const only = applyServiceUpdate(confined, { capDrop: ["ALL"] });
      expect(caps(only)).toEqual({ add: ["CAP_NET_ADMIN"], drop: ["ALL"] });
      expect(caps(applyServiceUpdate(only, { capAdd: ["NET_BIND_SERVICE"] }))).toEqual({ add: ["CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"], drop: ["ALL"] });
      expect(caps(applyServiceUpdate(confined, { capAdd: ["RESET"], capDrop: ["reset"] }))).toEqual({ add: [], drop: [] });
      expect(caps(applyServiceUpdate(confined, { capDrop: ["RESET", "KILL"] }))).toEqual({ add: ["CAP_NET_ADMIN"], drop: ["CAP_KILL"] });
    });

    it("refuses an unknown name as typed", () => {
      expect(() => applyServiceUpdate(confined, { capAdd: ["CAP_FLY"] })).toThrow(/cap-add: "CAP_FLY" is not a Linux capability/);
    });
  });

  it("sets limits one by one, and 0 clears one", () => {
    const limited = applyServiceUpdate(current, { limits: { nanoCpus: 500_000_000, memoryBytes: 512 * 1024 ** 2 } });
    expect(limited.taskTemplate.resources).toEqual({ limits: { nanoCpus: 500_000_000, memoryBytes: 512 * 1024 ** 2 } });
    const more = applyServiceUpdate(limited, { limits: { pids: 100, nanoCpus: 0 } });
    expect(more.taskTemplate.resources).toEqual({ limits: { memoryBytes: 512 * 1024 ** 2, pids: 100 } });
    expect(applyServiceUpdate(more, { limits: { memoryBytes: 0, pids: 0 } }).taskTemplate).not.toHaveProperty("resources");
    expect(() => applyServiceUpdate(current, { limits: { memoryBytes: 1024 } })).toThrow(/memory limit: 1 KiB is below 6 MiB/);
  });

  describe("Docker's container fields and restart policy, as docker service update sets them", () => {
    const docker = normalizeServiceSpec({
      ...current,
      taskTemplate: {
        ...current.taskTemplate,
        container: { command: [], args: ["--port", "8080"], image: "vipmesh/whoami", hostname: "h", labels: { a: "b", c: "d" }, env: [] },
        restartPolicy: { condition: "on-failure", delayMs: 1000, maxAttempts: 2, windowMs: 0 },
      },
      networks: [{ target: "net1", aliases: ["web"] }, { target: "net2" }],
    });

    it("keeps them all through an unrelated change (scale, env)", () => {
      const spec = applyServiceUpdate(docker, { replicas: 1, envAdd: ["X=1"] });
      expect(spec.taskTemplate.container).toMatchObject({ image: "vipmesh/whoami", args: ["--port", "8080"], hostname: "h", labels: { a: "b", c: "d" } });
      expect(spec.taskTemplate.restartPolicy).toEqual(docker.taskTemplate.restartPolicy);
      expect(spec.networks).toEqual(docker.networks);
    });

    it("sets the image and host name; \"\" leaves either out", () => {
      const spec = applyServiceUpdate(docker, { image: "vipmesh/whoami:2", hostname: "web-1" });
      expect(spec.taskTemplate.container).toMatchObject({ image: "vipmesh/whoami:2", hostname: "web-1" });
      const cleared = applyServiceUpdate(spec, { hostname: "" });
      expect(cleared.taskTemplate.container).not.toHaveProperty("hostname");
      expect(applyServiceUpdate(current, { image: "vipmesh/whoami" }).taskTemplate.container.image).toBe("vipmesh/whoami");
      expect(() => applyServiceUpdate(docker, { image: "" })).toThrow(/a command is required, or an image/);
      expect(() => applyServiceUpdate(docker, { hostname: "-bad" })).toThrow(/hostname "-bad" is not a valid host name/);
    });

    it("a new command replaces Docker's args too: vipmesh's command is the whole argv", () => {
      const container = applyServiceUpdate(docker, { command: ["sleep", "1"] }).taskTemplate.container;
      expect(container.command).toEqual(["sleep", "1"]);
      expect(container).not.toHaveProperty("args");
    });

    it("Docker's --entrypoint replaces the Command alone, --args the Args alone, --workdir the Dir; [] or \"\" gives the image's back", () => {
      const image = applyServiceUpdate(docker, { image: "nginx:1.25", entrypoint: ["/bin/sh", "-c"], args: ["exec nginx"], dir: "/srv" });
      expect(image.taskTemplate.container).toMatchObject({ image: "nginx:1.25", command: ["/bin/sh", "-c"], args: ["exec nginx"], dir: "/srv" });
      const kept = applyServiceUpdate(image, { args: ["-g", "daemon off;"] }).taskTemplate.container;
      expect(kept).toMatchObject({ command: ["/bin/sh", "-c"], args: ["-g", "daemon off;"], dir: "/srv" });
      const reset = applyServiceUpdate(image, { entrypoint: [], args: [], dir: "" }).taskTemplate.container;
      expect(reset).toMatchObject({ image: "nginx:1.25", command: [] });
      expect(reset).not.toHaveProperty("args");
      expect(reset).not.toHaveProperty("dir");
      expect(() => applyServiceUpdate(image, { dir: "srv" })).toThrow(/workdir "srv" is not an absolute path/);
    });

    it("a service given an image it did not have runs its host command as the image's Args (Docker's meaning), unless the update gives them", () => {
      const host = applyServiceUpdate(docker, { image: "", command: ["httpd", "-f", "-p", "80"] });
      expect(host.taskTemplate.container).not.toHaveProperty("image");
      const imaged = applyServiceUpdate(host, { image: "busybox:1" }).taskTemplate.container;
      expect(imaged).toMatchObject({ image: "busybox:1", command: [], args: ["httpd", "-f", "-p", "80"] });
      const given = applyServiceUpdate(host, { image: "busybox:1", entrypoint: ["/bin/sh", "-c"], args: ["exec httpd -f"] }).taskTemplate.container;
      expect(given).toMatchObject({ command: ["/bin/sh", "-c"], args: ["exec httpd -f"] });
      // an image it had already: its Command (entrypoint) stays
      const entered = applyServiceUpdate(host, { image: "busybox:1", entrypoint: ["/bin/sh", "-c"] });
      expect(applyServiceUpdate(entered, { image: "busybox:2" }).taskTemplate.container).toMatchObject({ image: "busybox:2", command: ["/bin/sh", "-c"], args: ["httpd", "-f", "-p", "80"] });
    });

    it("refuses --entrypoint when the service has no image after the update", () => {
      const host = applyServiceUpdate(docker, { image: "", command: ["sleep", "1"] });
      expect(() => applyServiceUpdate(host, { entrypoint: ["/bin/sh"] })).toThrow(/service \S+ has no image: --entrypoint replaces an image's ENTRYPOINT/);
      expect(() => applyServiceUpdate(docker, { image: "", command: ["sleep", "1"], entrypoint: ["sh"] })).toThrow(/has no image: --entrypoint/);
      expect(applyServiceUpdate(host, { image: "busybox:1", entrypoint: ["/bin/sh"] }).taskTemplate.container).toMatchObject({ command: ["/bin/sh"], args: ["sleep", "1"] });
    });

    it("reservations merge each on its own beside the limits, 0 clears one, and other updates keep them", () => {
      const reserved = applyServiceUpdate(docker, { reservations: { nanoCpus: 5e8, memoryBytes: 64 * 1024 ** 2 }, limits: { memoryBytes: 128 * 1024 ** 2 } });
      expect(reserved.taskTemplate.resources).toEqual({ limits: { memoryBytes: 128 * 1024 ** 2 }, reservations: { nanoCpus: 5e8, memoryBytes: 64 * 1024 ** 2 } });
      expect(applyServiceUpdate(reserved, { replicas: 2 }).taskTemplate.resources).toEqual(reserved.taskTemplate.resources);
      expect(applyServiceUpdate(reserved, { reservations: { nanoCpus: 0 } }).taskTemplate.resources?.reservations).toEqual({ memoryBytes: 64 * 1024 ** 2 });
      expect(() => applyServiceUpdate(reserved, { limits: { memoryBytes: 32 * 1024 ** 2 } })).toThrow(/memory reservation: 64 MiB is above the memory limit of 32 MiB/);
    });

    it("removes container labels, then adds, apart from the service's labels", () => {
      const spec = applyServiceUpdate(docker, { containerLabelRm: ["a", "c"], containerLabelAdd: { c: "e" } });
      expect(spec.taskTemplate.container.labels).toEqual({ c: "e" });
      expect(spec.annotations.labels).toEqual(docker.annotations.labels);
      expect(applyServiceUpdate(spec, { containerLabelRm: ["c"] }).taskTemplate.container).not.toHaveProperty("labels");
      expect(applyServiceUpdate(current, { containerLabelAdd: { x: "" } }).taskTemplate.container.labels).toEqual({ x: "" });
    });

    it("changes only the restart policy's fields given", () => {
      expect(applyServiceUpdate(docker, { restartPolicy: { delayMs: 2000 } }).taskTemplate.restartPolicy).toEqual({
        condition: "on-failure",
        delayMs: 2000,
        maxAttempts: 2,
        windowMs: 0,
      });
      expect(applyServiceUpdate(docker, { restartPolicy: { delayMs: undefined } }).taskTemplate.restartPolicy).toEqual(docker.taskTemplate.restartPolicy);
      expect(() => applyServiceUpdate(docker, { restartPolicy: { windowMs: -1 } })).toThrow(/restart policy window/);
    });

    it("a service without a policy gets Docker's default one with the fields given, and none without", () => {
      expect(applyServiceUpdate(current, { restartPolicy: { maxAttempts: 3 } }).taskTemplate.restartPolicy).toEqual({
        condition: "any",
        delayMs: 5000,
        maxAttempts: 3,
        windowMs: 0,
      });
      expect(applyServiceUpdate(current, { restartPolicy: {} }).taskTemplate).not.toHaveProperty("restartPolicy");
    });

    it("removes networks by ID, then adds attachments with their aliases", () => {
      const spec = applyServiceUpdate(docker, { networkRm: ["net1"], networkAdd: [{ target: "net1", aliases: ["web", "front"] }, { target: "appnet" }] });
      expect(spec.networks).toEqual([{ target: "net2" }, { target: "net1", aliases: ["web", "front"] }, { target: "appnet" }]);
      expect(applyServiceUpdate(docker, { networkRm: ["net2", "gone"] }).networks).toEqual([{ target: "net1", aliases: ["web"] }]);
      expect(() => applyServiceUpdate(docker, { networkAdd: [{ target: "net3", aliases: ["bad alias"] }] })).toThrow(/network net3: alias name "bad alias" is not valid/);
    });
  });
});
