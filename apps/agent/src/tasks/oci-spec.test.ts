import { DEFAULT_CAPABILITIES, DEFAULT_PIDS_LIMIT } from "@vipmesh/core";
import { describe, expect, it } from "vitest";
import { containerProcess, DEFAULT_PATH, DENIED_SYSCALLS, mergeEnv, type OciSpecInput, ociSpec, resolveUser } from "./oci-spec.ts";

const image = { entrypoint: ["/bin/httpd", "-f"], cmd: ["-p", "80"], env: ["PATH=/bin", "A=image"], workingDir: "/www", user: "" };

const input = (over: Partial<OciSpecInput> = {}): OciSpecInput => ({
  container: { image: "web:1", command: [], env: [] },
  image,
  hostname: "abc123",
  user: { uid: 0, gid: 0, additionalGids: [] },
  confinement: { user: "", capabilities: [...DEFAULT_CAPABILITIES], pids: DEFAULT_PIDS_LIMIT, memoryBytes: 0, nanoCpus: 0 },
  netns: "/run/netns/vm-t1",
  etc: { hosts: "/etc/netns/vm-t1/hosts", resolvConf: "/etc/netns/vm-t1/resolv.conf", hostname: "/state/t1/hostname" },
  cgroupsPath: "/vipmesh-tasks/t1",
  nofile: 65536,
  ...over,
});

const spec = (i: OciSpecInput): any => {
  const p = containerProcess(i);
  if ("error" in p) throw new Error(p.error);
  return ociSpec(i, p);
};

describe("containerProcess", () => {
  it("runs the image's entrypoint and CMD, in its working dir, with its env under the spec's", () => {
    const p = containerProcess(input({ container: { image: "web:1", command: [], env: ["A=spec", "B=2"] } }));
    expect(p).toEqual({ args: ["/bin/httpd", "-f", "-p", "80"], env: ["PATH=/bin", "A=spec", "HOSTNAME=abc123", "B=2"], cwd: "/www" });
  });

  it("follows Docker's rule: args replace CMD, a command replaces the entrypoint and drops CMD; dir replaces the working dir", () => {
    expect(containerProcess(input({ container: { image: "w", command: [], args: ["-p", "8080"], env: [] } }))).toMatchObject({ args: ["/bin/httpd", "-f", "-p", "8080"] });
    expect(containerProcess(input({ container: { image: "w", command: ["/bin/sh"], env: [], dir: "/tmp" } }))).toMatchObject({ args: ["/bin/sh"], cwd: "/tmp" });
  });

  it("says so when the image has nothing to run", () => {
    const p = containerProcess(input({ image: { ...image, entrypoint: [], cmd: [] } }));
    expect(p).toEqual({ error: expect.stringContaining('image "web:1" has no entrypoint or CMD') });
  });

  it("defaults cwd to / and PATH to Docker's", () => {
    const p = containerProcess(input({ image: { ...image, env: [], workingDir: "" } }));
    expect(p).toMatchObject({ cwd: "/", env: [`HOSTNAME=abc123`, `PATH=${DEFAULT_PATH}`] });
  });
});

describe("mergeEnv", () => {
  it("overrides by key, keeping the first place", () => {
    expect(mergeEnv(["PATH=/x", "A=1"], ["A=2=3", "B"])).toEqual(["PATH=/x", "A=2=3", "B="]);
  });
});

describe("resolveUser", () => {
  const passwd = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34:www:/var/www:/bin/false\n";
  const group = "root:x:0:\nwww-data:x:34:\nweb:x:35:www,other\nstaff:x:50:www\n";

  it("takes numbers as they are, and a user's primary group from passwd", () => {
    expect(resolveUser("", undefined, undefined)).toEqual({ uid: 0, gid: 0, additionalGids: [] });
    expect(resolveUser("1000:1001", undefined, undefined)).toEqual({ uid: 1000, gid: 1001, additionalGids: [] });
    expect(resolveUser("33", passwd, group)).toEqual({ uid: 33, gid: 34, additionalGids: [35, 50] });
  });

  it("resolves names from the image's files, with their supplementary groups", () => {
    expect(resolveUser("www", passwd, group)).toEqual({ uid: 33, gid: 34, additionalGids: [35, 50] });
    expect(resolveUser("www:staff", passwd, group)).toEqual({ uid: 33, gid: 50, additionalGids: [35] });
    expect(resolveUser("www:7", passwd, group)).toEqual({ uid: 33, gid: 7, additionalGids: [35, 50] });
  });

  it("names what it cannot resolve", () => {
    expect(resolveUser("nobody", passwd, group)).toEqual({ error: expect.stringContaining(`user "nobody" is not in the image's /etc/passwd`) });
    expect(resolveUser("nobody", undefined, undefined)).toEqual({ error: expect.stringContaining("the image has none") });
    expect(resolveUser("www:wheel", passwd, group)).toEqual({ error: expect.stringContaining(`group "wheel" is not in the image's /etc/group`) });
  });
});

describe("ociSpec", () => {
  it("joins the sandbox's network namespace and makes the others its own", () => {
    expect(spec(input()).linux.namespaces).toEqual([{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }, { type: "network", path: "/run/netns/vm-t1" }]);
  });

  it("bind-mounts the sandbox's resolv.conf and hosts and the task's hostname read-only", () => {
    const s = spec(input());
    const bind = (dest: string) => s.mounts.find((m: { destination: string }) => m.destination === dest);
    expect(bind("/etc/resolv.conf")).toMatchObject({ type: "bind", source: "/etc/netns/vm-t1/resolv.conf", options: expect.arrayContaining(["ro", "nosuid", "nodev"]) });
    expect(bind("/etc/hosts")).toMatchObject({ source: "/etc/netns/vm-t1/hosts" });
    expect(bind("/etc/hostname")).toMatchObject({ source: "/state/t1/hostname" });
    expect(bind("/sys").options).toContain("ro");
    expect(s.hostname).toBe("abc123");
  });

  it("confines as a process task: capabilities, no_new_privileges, masked paths, rlimits, seccomp", () => {
    const s = spec(input({ confinement: { user: "", capabilities: ["CAP_CHOWN", "CAP_NET_ADMIN"], pids: 100, memoryBytes: 0, nanoCpus: 0 } }));
    expect(s.process.capabilities).toEqual({ bounding: ["CAP_CHOWN", "CAP_NET_ADMIN"], effective: ["CAP_CHOWN", "CAP_NET_ADMIN"], permitted: ["CAP_CHOWN", "CAP_NET_ADMIN"], inheritable: [] });
    expect(s.process.noNewPrivileges).toBe(true);
    expect(s.process.rlimits).toEqual([
      { type: "RLIMIT_NOFILE", hard: 65536, soft: 65536 },
      { type: "RLIMIT_CORE", hard: 0, soft: 0 },
    ]);
    expect(s.linux.maskedPaths).toEqual(expect.arrayContaining(["/proc/kcore", "/proc/keys", "/sys/firmware"]));
    expect(s.linux.readonlyPaths).toEqual(expect.arrayContaining(["/proc/sys", "/proc/irq"]));
    expect(s.linux.seccomp.defaultAction).toBe("SCMP_ACT_ALLOW");
    expect(s.linux.seccomp.syscalls[0]).toEqual({ names: DENIED_SYSCALLS, action: "SCMP_ACT_ERRNO", errnoRet: 1 });
    expect(s.linux.seccomp.syscalls.filter((r: { names: string[] }) => r.names[0] === "clone")).toHaveLength(7);
    expect(DENIED_SYSCALLS).toEqual(expect.arrayContaining(["mount", "unshare", "setns", "bpf", "ptrace"]));
  });

  it("leaves a user other than root no effective capabilities, only the bounding set", () => {
    const s = spec(input({ user: { uid: 33, gid: 34, additionalGids: [50] } }));
    expect(s.process.user).toEqual({ uid: 33, gid: 34, additionalGids: [50] });
    expect(s.process.capabilities.effective).toEqual([]);
    expect(s.process.capabilities.permitted).toEqual([]);
    expect(s.process.capabilities.bounding).toEqual([...DEFAULT_CAPABILITIES]);
  });

  it("sets the cgroup's limits: pids always, memory and CPU when given", () => {
    expect(spec(input()).linux.resources).toEqual({ devices: [{ allow: false, access: "rwm" }], pids: { limit: DEFAULT_PIDS_LIMIT } });
    const s = spec(input({ confinement: { user: "", capabilities: [], pids: 50, memoryBytes: 32 << 20, nanoCpus: 500_000_000 } }));
    expect(s.linux.resources).toMatchObject({ pids: { limit: 50 }, memory: { limit: 32 << 20 }, cpu: { quota: 50_000, period: 100_000 } });
    expect(s.linux.cgroupsPath).toBe("/vipmesh-tasks/t1");
  });
});
